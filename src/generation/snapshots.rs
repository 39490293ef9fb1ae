//! Job rows as of an event, read once per event however many subscribers follow the job.
//!
//! Every subscription stream that accepts an event shows the job's row (with the event's
//! status). Reading it per subscriber costs one pool checkout and one query per delivery, so
//! one event watched by 1,000 sockets ran 1,000 identical queries. Here the first subscriber
//! to need an event's row reads it and the others share that read.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use tokio::sync::OnceCell;
use uuid::Uuid;

use super::model::{self, JobRow};
use crate::{
    db::{self, DbPool},
    error::{AppError, AppResult},
};

/// How many events' rows are kept (a subscriber further behind reads the row itself).
const KEEP: usize = 1024;

type Cell = Arc<OnceCell<Option<JobRow>>>;

/// The shared reads, keyed by job and event sequence number.
#[derive(Default)]
pub struct JobSnapshots {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    cells: HashMap<(Uuid, i64), Cell>,
    order: VecDeque<(Uuid, i64)>,
}

impl JobSnapshots {
    /// The job's row read after event `seq` committed (`None` if the job is gone). A failed
    /// read is not kept: the next subscriber tries again.
    pub async fn get(&self, pool: &DbPool, job: Uuid, seq: i64) -> AppResult<Option<JobRow>> {
        let cell = {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let Inner { cells, order } = &mut *inner;
            let cell = cells
                .entry((job, seq))
                .or_insert_with(|| {
                    order.push_back((job, seq));
                    Cell::default()
                })
                .clone();
            while order.len() > KEEP {
                if let Some(old) = order.pop_front() {
                    cells.remove(&old);
                }
            }
            cell
        };
        let row = cell
            .get_or_try_init(|| async {
                let mut conn = db::conn(pool).await?;
                model::by_id(&mut conn, job).await.map_err(AppError::from)
            })
            .await?;
        Ok(row.clone())
    }
}
