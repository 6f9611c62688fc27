//! oodlab-store
