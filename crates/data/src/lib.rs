//! oodlab-data
