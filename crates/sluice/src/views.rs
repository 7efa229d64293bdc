//! The view engine (`sluice-view`) behind the HTTP API's `/v1/sql` and `/v1/views` routes:
//! `sluice-http` names what it needs as a trait (`ViewsService`) and this adapter answers it,
//! so neither crate depends on the other.

use sluice_http::{BoxFuture, ChangeStream, ViewPositions, ViewsFailure, ViewsService};
use sluice_view::service::{Views, ViewsError};
use std::sync::Arc;

#[derive(Clone)]
pub(crate) struct ViewsAdapter(pub Arc<Views>);

impl std::fmt::Debug for ViewsAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ViewsAdapter")
    }
}

/// The HTTP status and error code of each refusal.
fn failure(e: ViewsError) -> ViewsFailure {
    let (status, error_code) = match &e {
        ViewsError::Sql(_) => (400, "INVALID_SQL"),
        ViewsError::NotFound(_) => (404, "NOT_FOUND"),
        ViewsError::Conflict(_) => (409, "CONFLICT"),
        ViewsError::TooLarge(_) => (400, "ANSWER_TOO_LARGE"),
        ViewsError::Value(_) => (400, "INVALID_VALUE"),
        ViewsError::Broker(c) if c.is_connection_lost() => (503, "BROKER_UNAVAILABLE"),
        ViewsError::Broker(_) => (502, "BROKER_ERROR"),
        ViewsError::State(_) => (500, "VIEW_STATE_ERROR"),
        ViewsError::Unavailable(_) => (503, "VIEWS_NOT_READY"),
    };
    ViewsFailure {
        status,
        error_code,
        message: e.to_string(),
    }
}

impl ViewsService for ViewsAdapter {
    fn execute<'a>(&'a self, sql: &'a str) -> BoxFuture<'a, Result<String, ViewsFailure>> {
        Box::pin(async move { self.0.execute(sql).await.map_err(failure) })
    }

    fn list(&self) -> String {
        self.0.list(None)
    }

    fn describe(&self, name: &str) -> Result<String, ViewsFailure> {
        self.0.describe(name).map_err(failure)
    }

    fn drop_view<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<String, ViewsFailure>> {
        Box::pin(async move { self.0.drop_by_name(name).await.map_err(failure) })
    }

    fn rebuild<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<String, ViewsFailure>> {
        Box::pin(async move { self.0.rebuild(name).await.map_err(failure) })
    }

    fn row_by_key(&self, name: &str, key: &str) -> Result<String, ViewsFailure> {
        self.0.row_by_key(name, key).map_err(failure)
    }

    fn rows(
        &self,
        name: &str,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<String, ViewsFailure> {
        self.0.rows(name, prefix, after, limit).map_err(failure)
    }

    fn changes(&self, name: &str, snapshot: bool) -> Result<ChangeStream, ViewsFailure> {
        let feed = self.0.changes(name, snapshot).map_err(failure)?;
        Ok(Box::pin(futures::stream::unfold(
            feed,
            |mut feed| async move {
                let event = feed.next().await?;
                Some(((event.event, event.data), feed))
            },
        )))
    }

    fn positions(
        &self,
        name: &str,
    ) -> Result<tokio::sync::watch::Receiver<ViewPositions>, ViewsFailure> {
        Ok(self.0.get(name).map_err(failure)?.live.watch_positions())
    }

    fn home<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Option<String>> {
        Box::pin(self.0.home(name))
    }

    fn home_of_statement<'a>(&'a self, sql: &'a str) -> BoxFuture<'a, Option<String>> {
        Box::pin(self.0.home_of_statement(sql))
    }
}
