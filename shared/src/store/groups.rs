//! The custom groups of a workspace that CSV rows refer to.

use std::collections::HashMap;

use diesel::prelude::*;
use serde::Serialize;

use crate::db::DbConn;
use crate::db::schema::groups;
use crate::ids::{GroupId, WorkspaceId};
use crate::on_conn;
use crate::store::now;

/// A group as the API shows it.
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = groups, check_for_backend(diesel::sqlite::Sqlite))]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Group {
    /// Primary key.
    #[cfg_attr(feature = "utoipa", schema(value_type = i64))]
    pub id: GroupId,
    /// The name rows use in their Group column.
    pub name: String,
}

/// Outcome of creating a group.
#[derive(Debug)]
pub enum CreateGroup {
    /// The group was created.
    Created(Group),
    /// A group with that name already exists.
    AlreadyExists(Group),
}

/// Creates a group, or reports the one that already has that name.
pub fn create(conn: &mut DbConn, workspace: WorkspaceId, name: &str) -> QueryResult<CreateGroup> {
    on_conn!(conn, |c| {
        let inserted = diesel::insert_into(groups::table)
            .values((
                groups::workspace_id.eq(workspace),
                groups::name.eq(name),
                groups::created_at.eq(now()),
            ))
            .on_conflict((groups::workspace_id, groups::name))
            .do_nothing()
            .execute(c)?;
        let group = groups::table
            .filter(groups::workspace_id.eq(workspace))
            .filter(groups::name.eq(name))
            .select(Group::as_select())
            .first(c)?;
        Ok(if inserted == 1 {
            CreateGroup::Created(group)
        } else {
            CreateGroup::AlreadyExists(group)
        })
    })
}

/// The workspace's groups by name.
pub fn list(conn: &mut DbConn, workspace: WorkspaceId) -> QueryResult<Vec<Group>> {
    on_conn!(conn, |c| {
        groups::table
            .filter(groups::workspace_id.eq(workspace))
            .order(groups::name)
            .select(Group::as_select())
            .load(c)
    })
}

/// The workspace's groups keyed by lower-cased name, for matching CSV cells case-insensitively.
pub fn by_name(conn: &mut DbConn, workspace: WorkspaceId) -> QueryResult<HashMap<String, GroupId>> {
    Ok(list(conn, workspace)?
        .into_iter()
        .map(|g| (g.name.to_lowercase(), g.id))
        .collect())
}
