use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde::{Deserialize, Serialize};

use crate::engine::EngineError;

/// Every error leaves the API as this body with a matching status.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        use crate::ipam::IpamError;
        let status = match &e {
            EngineError::Invalid(_) => StatusCode::BAD_REQUEST,
            EngineError::NotFound { .. } => StatusCode::NOT_FOUND,
            EngineError::Conflict(_) => StatusCode::CONFLICT,
            EngineError::Forbidden(_) => StatusCode::FORBIDDEN,
            EngineError::Ipam(IpamError::OutsideSubnet { .. } | IpamError::Reserved { .. }) => {
                StatusCode::BAD_REQUEST
            }
            EngineError::Ipam(_) => StatusCode::CONFLICT,
            EngineError::Process(_) => StatusCode::BAD_REQUEST,
            EngineError::Host(_) | EngineError::Store(_) | EngineError::Many(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        Self::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            log::error!("{}", self.message);
        }
        (
            self.status,
            Json(ErrorBody {
                message: self.message,
            }),
        )
            .into_response()
    }
}

/// The API's refusal of a request the listener cuts short (too large, too slow).
pub fn reject(status: StatusCode, message: String) -> Response {
    ApiError::new(status, message).into_response()
}
