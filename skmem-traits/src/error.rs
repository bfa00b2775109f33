//! One error type for every layer.

use alloc::string::String;

/// Convenience alias used throughout skmem.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Everything that can go wrong in skmem that a caller, a peer process or
/// the operating system can cause.
///
/// Broken internal invariants are panics, never values of this type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A construction parameter is zero, too large, not a power of two, or
    /// otherwise unusable. `param` names it as the builder spells it.
    #[error("invalid parameter `{param}` = {value}: {reason}")]
    InvalidParam {
        /// The parameter's name.
        param: &'static str,
        /// The value that was given.
        value: u64,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A bounded resource has nothing left and the caller asked not to wait.
    #[error("`{name}` is exhausted: all {capacity} {unit} are in use")]
    Exhausted {
        /// Name of the region, cache or pool.
        name: String,
        /// How many units it holds in all.
        capacity: u64,
        /// What a unit is ("segments", "objects", "packets").
        unit: &'static str,
    },
    /// An index or count that came from outside (a user process, a
    /// descriptor) is out of range.
    #[error("`{field}` = {value} is out of range (limit {limit})")]
    OutOfRange {
        /// Which field carried the value.
        field: &'static str,
        /// The offending value.
        value: u64,
        /// The exclusive upper bound it had to respect.
        limit: u64,
    },
    /// A value that came from outside is inconsistent with the pool's state.
    #[error("`{field}` is invalid: {reason}")]
    Invalid {
        /// Which field carried the value.
        field: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// The segment source does not offer this operation.
    #[error("segment source `{source_name}` does not support {operation}")]
    Unsupported {
        /// The source's name.
        source_name: &'static str,
        /// What was asked of it.
        operation: &'static str,
    },
    /// A system call failed.
    #[error("{operation} failed: os error {errno}")]
    Os {
        /// What was being done.
        operation: &'static str,
        /// The raw `errno`.
        errno: i32,
    },
    /// The deterministic fault injector made this operation fail.
    #[error("injected fault in `{name}` (allocation #{sequence})")]
    InjectedFault {
        /// The region whose injector fired.
        name: String,
        /// Which allocation attempt it was.
        sequence: u64,
    },
    /// An [`ObjectCtor`](crate::ObjectCtor) refused to construct an object.
    #[error("constructor for `{name}` failed")]
    CtorFailed {
        /// The cache whose constructor failed.
        name: String,
    },
    /// The object is in a state that forbids the operation (the seed's
    /// `EBUSY` / `EALREADY`).
    #[error("`{name}` is busy: {reason}")]
    Busy {
        /// Name of the object.
        name: String,
        /// What it is doing or what state it is in.
        reason: &'static str,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidParam`].
    pub fn invalid_param(param: &'static str, value: u64, reason: &'static str) -> Self {
        Error::InvalidParam {
            param,
            value,
            reason,
        }
    }

    /// Shorthand for [`Error::Os`] from the calling thread's `errno`-style code.
    pub fn os(operation: &'static str, errno: i32) -> Self {
        Error::Os { operation, errno }
    }

    /// This error with the parameter it names replaced by `param`, when it
    /// is an [`Error::InvalidParam`] (any other error is returned as is):
    /// a layer that computes one layer's parameters from its own
    /// configuration uses it so that the complaint names the setting the
    /// caller made (a region's `obj_size` refused as the pool's `buf_size`).
    #[must_use]
    pub fn rename_param(self, param: &'static str) -> Self {
        match self {
            Error::InvalidParam { value, reason, .. } => Error::InvalidParam {
                param,
                value,
                reason,
            },
            other => other,
        }
    }

    /// `true` for errors that say "nothing left right now", which a caller
    /// may retry later.
    pub fn is_exhaustion(&self) -> bool {
        matches!(self, Error::Exhausted { .. } | Error::InjectedFault { .. })
    }
}
