//! The API's error shape: an HTTP status, a `Code` and a `Message`, sent as JSON with the
//! request's `RequestId` (and the server's `HostId`), as the cloud API answers.

use std::borrow::Cow;

/// An error answered to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} ({status}): {message}")]
pub struct ApiError {
    /// The HTTP status, e.g. 400.
    pub status: u16,
    /// The API's error code, e.g. `SignatureDoesNotMatch`.
    pub code: Cow<'static, str>,
    /// A message for a person.
    pub message: String,
}

impl ApiError {
    /// An error with a fixed code.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: Cow::Borrowed(code),
            message: message.into(),
        }
    }

    /// 400 `MissingParameter` (the API's documented code) naming a required parameter that is absent.
    pub fn missing(name: &str) -> ApiError {
        ApiError {
            status: 400,
            code: Cow::Borrowed("MissingParameter"),
            message: format!(
                "The input parameter \"{name}\" that is mandatory for processing this request is not supplied."
            ),
        }
    }

    /// 400 `InvalidParameter`-style error for a parameter whose value is wrong.
    pub fn invalid(name: &str, why: impl std::fmt::Display) -> ApiError {
        ApiError {
            status: 400,
            code: Cow::Owned(format!("InvalidParameter.{name}")),
            message: format!("The specified parameter \"{name}\" is not valid: {why}"),
        }
    }

    /// 404 `Invalid<What>.NotFound`.
    pub fn not_found(what: &str, id: &str) -> ApiError {
        ApiError {
            status: 404,
            code: Cow::Owned(format!("Invalid{what}.NotFound")),
            message: format!("The specified {what} \"{id}\" does not exist."),
        }
    }

    /// 500 `InternalError` (the store failed); the detail goes to the server's log, not the client.
    pub fn internal() -> ApiError {
        ApiError::new(
            500,
            "InternalError",
            "The request processing has failed due to some unknown error.",
        )
    }

    /// The JSON body: `RequestId`, `HostId`, `Code`, `Message`.
    pub fn body(&self, request_id: &str, host: &str) -> String {
        serde_json::json!({
            "RequestId": request_id,
            "HostId": host,
            "Code": self.code,
            "Message": self.message,
        })
        .to_string()
    }
}
