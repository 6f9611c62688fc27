//! Errors of requests: a 4xx says what was wrong with the request; a 5xx says only that the server
//! failed (the cause goes to the server's log, never to the client).

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use oodlab_report::from_store::CompareError;
use oodlab_store::StoreError;

#[derive(Debug)]
pub struct Error {
    pub status: StatusCode,
    pub message: String,
}

impl Error {
    pub fn bad_request(message: impl Into<String>) -> Error {
        Error { status: StatusCode::BAD_REQUEST, message: message.into() }
    }

    pub fn not_found(message: impl Into<String>) -> Error {
        Error { status: StatusCode::NOT_FOUND, message: message.into() }
    }

    /// Logs the cause and hides it.
    pub fn internal(cause: &dyn std::fmt::Display) -> Error {
        tracing::error!("request failed: {cause}");
        Error { status: StatusCode::INTERNAL_SERVER_ERROR, message: "internal error (see the server's log)".into() }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        match e {
            StoreError::Invalid(m) => Error::bad_request(m),
            other => Error::internal(&other),
        }
    }
}

impl From<CompareError> for Error {
    fn from(e: CompareError) -> Error {
        match e {
            CompareError::Invalid(m) => Error::bad_request(m),
            CompareError::NoExperiment(name) => Error::not_found(format!("no experiment `{name}`")),
            CompareError::Store(s) => s.into(),
            other => Error::internal(&other),
        }
    }
}

/// An error answered as JSON `{"error": message}` (API routes).
pub struct ApiError(pub Error);

/// `?` on errors of the store, the comparison and requests, in both kinds of routes.
macro_rules! wrap {
    ($outer:ident) => {
        impl From<Error> for $outer {
            fn from(e: Error) -> $outer {
                $outer(e)
            }
        }
        impl From<StoreError> for $outer {
            fn from(e: StoreError) -> $outer {
                $outer(e.into())
            }
        }
        impl From<CompareError> for $outer {
            fn from(e: CompareError) -> $outer {
                $outer(e.into())
            }
        }
    };
}
wrap!(ApiError);
wrap!(PageError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0.status, axum::Json(serde_json::json!({ "error": self.0.message }))).into_response()
    }
}

/// An error answered as a page (HTML routes).
pub struct PageError(pub Error);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let title = self.0.status.canonical_reason().unwrap_or("error");
        let body = format!("<p class=\"error\">{}</p><p><a href=\"/\">All experiments</a></p>", crate::html::esc(&self.0.message));
        (self.0.status, Html(crate::html::page(title, &body))).into_response()
    }
}
