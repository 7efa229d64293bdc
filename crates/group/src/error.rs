//! The coordinator's one error enum. The broker maps each variant to a Kafka error code in
//! its single mapping (`sluice_broker::error`); the names follow Kafka's.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("invalid group id")]
    InvalidGroupId,
    #[error("unknown member id")]
    UnknownMemberId,
    #[error("member id required: rejoin with the member id given")]
    MemberIdRequired,
    #[error("illegal generation")]
    IllegalGeneration,
    #[error("rebalance in progress")]
    RebalanceInProgress,
    #[error("static member fenced by a newer instance with the same group.instance.id")]
    FencedInstanceId,
    #[error("inconsistent group protocol")]
    InconsistentGroupProtocol,
    #[error("session timeout outside the broker's allowed range")]
    InvalidSessionTimeout,
    #[error("group is at its maximum size")]
    GroupMaxSizeReached,
    #[error("group not found")]
    GroupIdNotFound,
    #[error("group has members")]
    NonEmptyGroup,
    #[error("invalid topic name")]
    InvalidTopic,
    #[error("group is subscribed to the topic")]
    GroupSubscribedToTopic,
    #[error("offset metadata larger than the limit")]
    OffsetMetadataTooLarge,
    #[error("coordinator limit reached: {0}")]
    LimitReached(&'static str),
    #[error("coordinator not available")]
    CoordinatorNotAvailable,
    /// The group's coordinator is on another broker (FindCoordinator names it).
    #[error("this broker does not coordinate the group")]
    NotCoordinator,
    #[error("the member epoch is fenced: abandon all partitions and rejoin")]
    FencedMemberEpoch,
    #[error("the member epoch is stale")]
    StaleMemberEpoch,
    #[error("the group.instance.id is still used by another member")]
    UnreleasedInstanceId,
    #[error("unsupported server assignor")]
    UnsupportedAssignor,
    #[error("an open transaction holds an offset for this partition")]
    UnstableOffsetCommit,
    #[error("invalid regular expression: {0}")]
    InvalidRegularExpression(String),
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
}
