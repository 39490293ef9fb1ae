//! What every resolver reaches through its context: state, viewer, loaders.

use async_graphql::{Context, dataloader::DataLoader};

use crate::{
    AppState,
    error::{AppError, AppResult},
    viewer::Viewer,
};

/// How long a loader waits for more keys before it runs its batch. async-graphql resolves
/// long lists in slices (its futures yield every 32 items), so the 1 ms default can split one
/// list's keys over two statements; 5 ms keeps a page of 100 in one.
const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(5);

/// A dataloader over `loader` with the batch window.
pub fn batched<L: Send + Sync + 'static>(loader: L) -> DataLoader<L> {
    DataLoader::new(loader, tokio::spawn).delay(BATCH_WINDOW)
}

static ANONYMOUS: Viewer = Viewer::Anonymous;

/// Typed access to request data; fails cleanly instead of panicking.
pub trait ContextExt {
    fn state(&self) -> AppResult<&AppState>;
    fn viewer(&self) -> &Viewer;
    /// The request's dataloader of type `L` (see `schema::insert_loaders`).
    fn loader<L: Send + Sync + 'static>(&self) -> AppResult<&DataLoader<L>>;
}

impl ContextExt for Context<'_> {
    fn state(&self) -> AppResult<&AppState> {
        self.data::<AppState>()
            .map_err(|_| AppError::internal(anyhow::anyhow!("AppState missing from schema data")))
    }

    fn viewer(&self) -> &Viewer {
        self.data_opt::<Viewer>().unwrap_or(&ANONYMOUS)
    }

    fn loader<L: Send + Sync + 'static>(&self) -> AppResult<&DataLoader<L>> {
        self.data::<DataLoader<L>>().map_err(|_| {
            AppError::internal(anyhow::anyhow!(
                "{} missing from request data",
                std::any::type_name::<L>()
            ))
        })
    }
}
