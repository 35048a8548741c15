//! The admin API's WSB part (`/api/wsb/…`): STAR's pushes as the administrator sees and drives
//! them.

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;

use super::{Admin, ApiError, ApiResult};

pub(super) async fn route(
    admin: &Admin,
    _request: Request<Incoming>,
    _method: &Method,
    _path: &[&str],
    _query: &str,
) -> ApiResult {
    let Some(_wsb) = &admin.wsb else {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "WSB is off"));
    };
    Err(ApiError::not_found("no such WSB path"))
}
