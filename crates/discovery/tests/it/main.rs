//! Integration tests of discovery against real parts: the Docker Engine,
//! real files and inotify.
mod docker;
mod logdir;
mod static_files;
