mod alerts;
mod backend;
mod checks;
mod outage;
mod repair;
