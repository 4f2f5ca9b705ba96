//! The domain model: plain data types with their validation rules.

pub mod access;
pub mod directory;
pub mod event;
pub mod filter;
pub mod incident;
pub mod job;
pub mod pki;
pub mod platform;
pub mod sensor;
pub mod service;
pub mod settings;

pub use access::*;
pub use directory::*;
pub use event::*;
pub use filter::*;
pub use incident::*;
pub use job::*;
pub use pki::*;
pub use platform::*;
pub use sensor::*;
pub use service::*;
pub use settings::*;
