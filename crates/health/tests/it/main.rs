mod alerts;
mod backend;
mod checks;
