//! [`Context`]: what every request and marker handler of one instance shares. Its
//! own module so that the handlers depend on it, never on the worker that wires
//! them together.

use std::sync::Arc;

use crate::announce::Announcer;
use crate::config::Config;
use crate::rooms::RoomStreams;
use crate::sessions::Sessions;
use crate::stats::Stats;

/// Everything a request or a marker handler needs; shared by all tasks of one instance.
pub(crate) struct Context {
    pub config: Config,
    pub sessions: Sessions,
    pub announcer: Announcer,
    pub rooms: Arc<RoomStreams>,
    pub stats: Arc<Stats>,
}
