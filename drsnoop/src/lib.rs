//! drsnoop's command line as a library, so that the man page and the shell completions
//! (`cargo xtask`) are generated from the very definition the binary parses.

pub mod options;
