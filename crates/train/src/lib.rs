//! oodlab-train
