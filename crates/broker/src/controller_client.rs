//! How handlers change the cluster's metadata: a command goes to the active controller
//! (wherever it is: `ClusterView::submit` hands it on), and the handler answers once the
//! command is committed and this broker has published an image that shows its result, so a
//! client that created a topic here can use it here at once. Other brokers follow on their
//! own; clients retry `UNKNOWN_TOPIC_OR_PARTITION` and `LEADER_NOT_AVAILABLE` meanwhile, as
//! with Kafka.

use crate::server::Broker;
use kafka_protocol::error::ResponseError;
use sluice_controller::{ControllerCommand, ControllerError, ControllerReply, MetadataImage};
use std::time::Duration;

/// The longest a handler waits for the controller and for its result to be published,
/// whatever timeout the request asks for.
pub(crate) const CONTROLLER_WAIT_MAX: Duration = Duration::from_secs(30);

/// Why a command got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotDone {
    pub error: ResponseError,
    pub message: String,
}

/// A request's `timeout_ms` as a wait: at least a second, at most `CONTROLLER_WAIT_MAX`.
pub(crate) fn wait_limit(timeout_ms: i32) -> Duration {
    let ms = u64::try_from(timeout_ms).unwrap_or(0).max(1_000);
    Duration::from_millis(ms).min(CONTROLLER_WAIT_MAX)
}

impl Broker {
    /// Runs `command` on the active controller; a refusal as a whole is `NotDone`.
    pub(crate) async fn submit(
        &self,
        command: ControllerCommand,
        limit: Duration,
    ) -> Result<ControllerReply, NotDone> {
        match self.cluster.submit(command, limit).await {
            Ok(ControllerReply::Refused(e)) => Err(NotDone::from(&e)),
            Ok(reply) => Ok(reply),
            Err(why) => Err(NotDone {
                error: ResponseError::RequestTimedOut,
                message: format!("the controller did not answer in time: {why}"),
            }),
        }
    }

    /// Waits until this broker has published an image for which `done` holds, at most
    /// `limit`, and not past the start of shutdown (which stops publishing: a request held
    /// until `limit` would hold the shutdown's drain, and the controlled shutdown behind it);
    /// whether it has.
    pub(crate) async fn wait_published(
        &self,
        limit: Duration,
        done: impl Fn(&MetadataImage) -> bool,
    ) -> bool {
        let mut published = self.published.subscribe();
        let shown = published.wait_for(|image| done(image));
        tokio::select! {
            waited = tokio::time::timeout(limit, shown) => matches!(waited, Ok(Ok(_))),
            () = self.shutdown_token().cancelled() => false,
        }
    }

    /// The image this broker serves from.
    pub(crate) fn published_image(&self) -> std::sync::Arc<MetadataImage> {
        self.published.borrow().clone()
    }
}

impl Broker {
    /// Runs a command that answers one result for each of its `count` items, which `pick`
    /// takes out of the reply (`None`: a reply of another kind). A command refused as a whole,
    /// or not answered, gives every item the same error. No items: nothing is sent.
    pub(crate) async fn submit_each<T>(
        &self,
        command: ControllerCommand,
        count: usize,
        limit: Duration,
        pick: impl FnOnce(ControllerReply) -> Option<Vec<Result<T, ControllerError>>>,
    ) -> Vec<Result<T, NotDone>> {
        if count == 0 {
            return Vec::new();
        }
        let every = |e: NotDone| (0..count).map(|_| Err(e.clone())).collect();
        let reply = match self.submit(command, limit).await {
            Ok(reply) => reply,
            Err(e) => return every(e),
        };
        let shown = format!("{reply:?}");
        match pick(reply) {
            Some(results) if results.len() == count => results
                .into_iter()
                .map(|r| r.map_err(|e| NotDone::from(&e)))
                .collect(),
            _ => every(NotDone {
                error: ResponseError::UnknownServerError,
                message: format!("unexpected controller answer {shown}"),
            }),
        }
    }
}

impl From<&ControllerError> for NotDone {
    fn from(e: &ControllerError) -> NotDone {
        NotDone {
            error: crate::error::controller_error(e),
            message: e.to_string(),
        }
    }
}
