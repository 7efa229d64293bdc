//! The broker's session with the active controller, as KRaft brokers keep it: register with
//! this process's incarnation id, then heartbeat. The broker starts fenced; a heartbeat says
//! it has caught up once this node's image holds its registration, and the controller unfences
//! it. A heartbeat refused for a stale epoch or an unknown broker (the controller fenced and
//! replaced the registration, or lost it) registers again. While fenced, the broker heartbeats
//! quickly, so it serves as soon as it may.

use sluice_consensus::MetadataQuorum;
use sluice_controller::{
    BrokerHeartbeat, ControllerCommand, ControllerError, ControllerReply, Registration,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often a fenced broker heartbeats (it is waiting to be let in).
const FENCED_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);
/// The shortest wait for a heartbeat's answer before it is sent again.
const HEARTBEAT_ANSWER_WAIT_MIN: Duration = Duration::from_secs(1);
/// How long a controlled shutdown waits for the controller.
const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

/// This broker's session as the controller last answered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerStatus {
    /// The broker epoch of the current registration, once registered.
    pub broker_epoch: Option<i64>,
    pub fenced: bool,
}

impl Default for BrokerStatus {
    fn default() -> Self {
        BrokerStatus {
            broker_epoch: None,
            fenced: true,
        }
    }
}

pub(crate) async fn run(
    quorum: Arc<MetadataQuorum>,
    registration: Registration,
    interval: Duration,
    status: Arc<watch::Sender<BrokerStatus>>,
    cancel: CancellationToken,
) {
    let broker_id = registration.broker_id;
    let images = quorum.state().images();
    loop {
        let current = *status.borrow();
        let command = match current.broker_epoch {
            None => ControllerCommand::RegisterBroker(registration.clone()),
            Some(epoch) => {
                let image = images.borrow().clone();
                let caught_up = image
                    .brokers
                    .get(&broker_id)
                    .is_some_and(|b| b.broker_epoch >= epoch);
                ControllerCommand::Heartbeat(BrokerHeartbeat {
                    broker_id,
                    broker_epoch: epoch,
                    caught_up,
                    want_fence: false,
                    want_shutdown: false,
                })
            }
        };
        // A heartbeat forwarded to an active controller that stopped answering (paused, cut
        // off) would wait for the command's whole timeout, longer than a session may last:
        // it is given up after a heartbeat interval (at least a second) and sent again, to
        // whichever controller is active by then. Heartbeats say the same thing twice safely.
        let wait = match &command {
            ControllerCommand::Heartbeat(_) => interval.max(HEARTBEAT_ANSWER_WAIT_MIN),
            _ => Duration::MAX,
        };
        let submitted = tokio::time::timeout(wait, quorum.submit(command, sluice_types::now_ms));
        let answer = tokio::select! {
            a = submitted => match a {
                Ok(answer) => answer,
                Err(_) => {
                    tracing::debug!(broker_id, "heartbeat unanswered; sending it again");
                    continue;
                }
            },
            _ = cancel.cancelled() => return,
        };
        let next = match answer {
            Ok(ControllerReply::Registered(epoch)) => {
                tracing::info!(broker_id, broker_epoch = epoch, "broker registered");
                status.send_replace(BrokerStatus {
                    broker_epoch: Some(epoch),
                    fenced: true,
                });
                continue;
            }
            Ok(ControllerReply::Heartbeat(reply)) => {
                if reply.fenced != current.fenced {
                    tracing::info!(broker_id, fenced = reply.fenced, "broker fencing changed");
                }
                status.send_modify(|s| s.fenced = reply.fenced);
                if reply.fenced {
                    FENCED_HEARTBEAT_INTERVAL
                } else {
                    interval
                }
            }
            Ok(ControllerReply::Refused(
                ControllerError::StaleBrokerEpoch { .. } | ControllerError::BrokerNotRegistered(_),
            )) => {
                tracing::warn!(broker_id, "registration lost; registering again");
                status.send_replace(BrokerStatus::default());
                continue;
            }
            Ok(other) => {
                // DuplicateBrokerRegistration: another incarnation's session has not expired
                // yet (this process restarted quickly); try until it has.
                tracing::info!(broker_id, answer = ?other, "controller refused; retrying");
                interval
            }
            Err(e) => {
                tracing::debug!(broker_id, error = %e, "no active controller reached; retrying");
                FENCED_HEARTBEAT_INTERVAL.max(interval / 4)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(next) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

/// Tells the controller this broker is going: it is fenced and its leadership moves away.
/// Bounded: a controller that cannot be reached (the last voters going down together) only
/// delays the exit by `CONTROLLED_SHUTDOWN_TIMEOUT`.
pub(crate) async fn controlled_shutdown(
    quorum: &MetadataQuorum,
    broker_id: i32,
    epoch: i64,
) -> bool {
    let heartbeat = ControllerCommand::Heartbeat(BrokerHeartbeat {
        broker_id,
        broker_epoch: epoch,
        caught_up: true,
        want_fence: false,
        want_shutdown: true,
    });
    let attempt = quorum.submit(heartbeat, sluice_types::now_ms);
    match tokio::time::timeout(CONTROLLED_SHUTDOWN_TIMEOUT, attempt).await {
        Ok(Ok(_)) => {
            tracing::info!(broker_id, "controlled shutdown: broker fenced");
            true
        }
        Ok(Err(e)) => {
            tracing::warn!(broker_id, error = %e, "controlled shutdown not committed");
            false
        }
        Err(_) => {
            tracing::warn!(
                broker_id,
                "controlled shutdown: no controller answered in time"
            );
            false
        }
    }
}
