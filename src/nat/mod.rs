//! Network address translation: the compiled forward table, the flow table and the
//! translator that applies them to packets.

mod fixmap;
pub mod flow;
mod flowmap;
pub mod table;
pub mod translate;

pub use flow::{Binding, FlowKey, FlowStats, FlowTable, MAX_FLOWS};
pub use table::{ForwardTable, Inbound, Match, MatchKind};
pub use translate::{
    Config, DEFAULT_MAX_FLOWS, Event, ForeignPolicy, Lookahead, Outcome, PacketMeta, Rebound,
    Translator, TranslatorState, Tuple, Verdict,
};
