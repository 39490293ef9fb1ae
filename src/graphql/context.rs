//! What every resolver reaches through its context: state, viewer, loaders.

use async_graphql::{Context, dataloader::DataLoader};

use crate::{
    AppState,
    accounts::{loaders::AccountsLoader, viewer::Viewer},
    credits::loaders::CreditsLoader,
    error::{AppError, AppResult},
    gallery::loaders::GalleryLoader,
};

/// How long a loader waits for more keys before it runs its batch. async-graphql resolves
/// long lists in slices (its futures yield every 32 items), so the 1 ms default can split one
/// list's keys over two statements; 5 ms keeps a page of 100 in one.
const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(5);

/// Per-request dataloaders (built for each HTTP request and each websocket connection).
/// They batch; they do not cache across requests.
pub struct Loaders {
    pub accounts: DataLoader<AccountsLoader>,
    pub credits: DataLoader<CreditsLoader>,
    pub gallery: DataLoader<GalleryLoader>,
}

impl Loaders {
    pub fn new(state: &AppState) -> Self {
        Loaders {
            accounts: DataLoader::new(AccountsLoader(state.pool.clone()), tokio::spawn)
                .delay(BATCH_WINDOW),
            gallery: DataLoader::new(GalleryLoader(state.pool.clone()), tokio::spawn)
                .delay(BATCH_WINDOW),
            credits: DataLoader::new(CreditsLoader(state.pool.clone()), tokio::spawn)
                .delay(BATCH_WINDOW),
        }
    }
}

static ANONYMOUS: Viewer = Viewer::Anonymous;

/// Typed access to request data; fails cleanly instead of panicking.
pub trait ContextExt {
    fn state(&self) -> AppResult<&AppState>;
    fn viewer(&self) -> &Viewer;
    fn loaders(&self) -> AppResult<&Loaders>;
}

impl ContextExt for Context<'_> {
    fn state(&self) -> AppResult<&AppState> {
        self.data::<AppState>()
            .map_err(|_| AppError::internal(anyhow::anyhow!("AppState missing from schema data")))
    }

    fn viewer(&self) -> &Viewer {
        self.data_opt::<Viewer>().unwrap_or(&ANONYMOUS)
    }

    fn loaders(&self) -> AppResult<&Loaders> {
        self.data::<Loaders>()
            .map_err(|_| AppError::internal(anyhow::anyhow!("Loaders missing from request data")))
    }
}
