//! Session, tokens, divisions, users and the audit log.

use super::ManagementClient;
use crate::client::ClientError;
use crate::mgmt::access::{CreateToken, CreatedToken, PasswordChange};
use crate::mgmt::directory::{AuditQuery, CreateUser, CreatedUser};
use crate::mgmt::page::{PageQuery, Paged};
use honeysens_core::ids::{ApiTokenId, DivisionId, UserId};
use honeysens_core::model::{ApiToken, AuditEntry, Division, DivisionSpec, User, UserSpec};
use reqwest::Method;

impl ManagementClient {
    /// `POST /api/auth/logout`.
    pub async fn logout(&self) -> Result<(), ClientError> {
        self.send(Method::POST, "/api/auth/logout", None).await
    }

    /// `POST /api/auth/password`.
    pub async fn change_password(&self, current: &str, new: &str) -> Result<(), ClientError> {
        let body = PasswordChange {
            current: current.to_owned(),
            new: new.to_owned(),
        };
        self.json(Method::POST, "/api/auth/password", &body).await
    }

    /// `POST /api/tokens`.
    pub async fn create_token(&self, req: &CreateToken) -> Result<CreatedToken, ClientError> {
        self.json(Method::POST, "/api/tokens", req).await
    }

    /// `GET /api/tokens`.
    pub async fn list_tokens(&self) -> Result<Vec<ApiToken>, ClientError> {
        self.get("/api/tokens").await
    }

    /// `DELETE /api/tokens/{id}`.
    pub async fn revoke_token(&self, id: ApiTokenId) -> Result<(), ClientError> {
        self.delete(&format!("/api/tokens/{id}")).await
    }

    /// `GET /api/divisions`.
    pub async fn list_divisions(&self, page: &PageQuery) -> Result<Paged<Division>, ClientError> {
        self.get_query("/api/divisions", page).await
    }

    /// `POST /api/divisions`.
    pub async fn create_division(&self, spec: &DivisionSpec) -> Result<Division, ClientError> {
        self.json(Method::POST, "/api/divisions", spec).await
    }

    /// `GET /api/divisions/{id}`.
    pub async fn get_division(&self, id: DivisionId) -> Result<Division, ClientError> {
        self.get(&format!("/api/divisions/{id}")).await
    }

    /// `PUT /api/divisions/{id}`.
    pub async fn update_division(
        &self,
        id: DivisionId,
        spec: &DivisionSpec,
    ) -> Result<Division, ClientError> {
        self.json(Method::PUT, &format!("/api/divisions/{id}"), spec)
            .await
    }

    /// `DELETE /api/divisions/{id}`.
    pub async fn delete_division(&self, id: DivisionId) -> Result<(), ClientError> {
        self.delete(&format!("/api/divisions/{id}")).await
    }

    /// `GET /api/users`.
    pub async fn list_users(&self, page: &PageQuery) -> Result<Paged<User>, ClientError> {
        self.get_query("/api/users", page).await
    }

    /// `GET /api/users/me`.
    pub async fn me(&self) -> Result<User, ClientError> {
        self.get("/api/users/me").await
    }

    /// `POST /api/users`.
    pub async fn create_user(&self, req: &CreateUser) -> Result<CreatedUser, ClientError> {
        self.json(Method::POST, "/api/users", req).await
    }

    /// `GET /api/users/{id}`.
    pub async fn get_user(&self, id: UserId) -> Result<User, ClientError> {
        self.get(&format!("/api/users/{id}")).await
    }

    /// `PUT /api/users/{id}`.
    pub async fn update_user(&self, id: UserId, spec: &UserSpec) -> Result<User, ClientError> {
        self.json(Method::PUT, &format!("/api/users/{id}"), spec)
            .await
    }

    /// `DELETE /api/users/{id}`.
    pub async fn delete_user(&self, id: UserId) -> Result<(), ClientError> {
        self.delete(&format!("/api/users/{id}")).await
    }

    /// `GET /api/audit`.
    pub async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, ClientError> {
        self.get_query("/api/audit", query).await
    }
}
