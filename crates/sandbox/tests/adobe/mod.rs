mod api;
mod harness;
mod ims_link;
mod umapi_client;
