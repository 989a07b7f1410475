mod api;
mod harness;
mod umapi_client;
