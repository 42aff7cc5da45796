//! Network address translation: the compiled forward table, the flow table and the
//! translator that applies them to packets.

mod fixmap;
pub mod flow;
mod flowmap;
mod fragment;
mod icmp_error;
pub mod table;
pub mod translate;
pub mod verdict;

pub use flow::{Binding, FlowStats, FlowTable, MAX_FLOWS};
pub use flowmap::FlowKey;
pub use fragment::Event;
pub use table::{ForwardTable, Inbound, Match, MatchKind};
pub use translate::{
    Config, DEFAULT_MAX_FLOWS, ForeignPolicy, Lookahead, PacketMeta, Rebound, Translator,
    TranslatorState,
};
pub use verdict::{DropReason, Malformed, Notes, Outcome, Tuple, Verdict};
