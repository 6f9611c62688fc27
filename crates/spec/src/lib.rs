//! oodlab-spec
