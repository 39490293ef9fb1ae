//! What every resolver reaches through its context: state, viewer, loaders.

use async_graphql::{Context, dataloader::DataLoader};

use crate::{
    AppState,
    accounts::{loaders::AccountsLoader, viewer::Viewer},
    credits::loaders::CreditsLoader,
    error::{AppError, AppResult},
};

/// Per-request dataloaders (built for each HTTP request and each websocket connection).
/// They batch; they do not cache across requests.
pub struct Loaders {
    pub accounts: DataLoader<AccountsLoader>,
    pub credits: DataLoader<CreditsLoader>,
}

impl Loaders {
    pub fn new(state: &AppState) -> Self {
        Loaders {
            accounts: DataLoader::new(AccountsLoader(state.pool.clone()), tokio::spawn),
            credits: DataLoader::new(CreditsLoader(state.pool.clone()), tokio::spawn),
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
