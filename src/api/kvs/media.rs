//! (being built: issue 17)

use std::sync::Arc;

use axum::Router;

use super::KvsState;

pub(super) fn routes(state: Arc<KvsState>) -> Router {
    Router::<Arc<KvsState>>::new().with_state(state)
}
