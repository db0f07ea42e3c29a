//! `Valid<T>`: any axum extractor whose rejection is answered in the API's JSON error shape.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::IntoResponse;

use crate::error::ApiError;

/// Wraps an extractor (`Path`, `Query`, `Json`…) so a bad path, query or body gets
/// `{"error":{…}}` with the extractor's own status, not axum's plain-text rejection.
#[derive(Debug, Clone, Copy)]
pub struct Valid<T>(pub T);

fn rejected(rejection: impl IntoResponse + std::fmt::Display) -> ApiError {
    let message = rejection.to_string();
    ApiError::Rejected {
        status: rejection.into_response().status(),
        message,
    }
}

impl<S, T> FromRequestParts<S> for Valid<T>
where
    S: Send + Sync,
    T: FromRequestParts<S>,
    T::Rejection: IntoResponse + std::fmt::Display,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        T::from_request_parts(parts, state)
            .await
            .map(Valid)
            .map_err(rejected)
    }
}

impl<S, T> FromRequest<S> for Valid<T>
where
    S: Send + Sync,
    T: FromRequest<S>,
    T::Rejection: IntoResponse + std::fmt::Display,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        T::from_request(request, state)
            .await
            .map(Valid)
            .map_err(rejected)
    }
}
