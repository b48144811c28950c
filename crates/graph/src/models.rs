//! Typed views of the Graph resources Lifeboat reads. Each keeps every other
//! property Graph sent in `extra`, because backups store Graph's JSON whole.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AssignedLicense {
    pub sku_id: String,
    #[serde(default)]
    pub disabled_plans: Vec<String>,
}

/// `$select` that gives every property of [`User`].
pub const USER_SELECT: &str = "id,displayName,userPrincipalName,mail,accountEnabled,assignedLicenses,department,city,country,companyName,jobTitle,officeLocation,ageGroup,userType,createdDateTime";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub display_name: Option<String>,
    pub user_principal_name: Option<String>,
    pub mail: Option<String>,
    pub account_enabled: Option<bool>,
    #[serde(default)]
    pub assigned_licenses: Vec<AssignedLicense>,
    pub department: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub company_name: Option<String>,
    pub job_title: Option<String>,
    pub office_location: Option<String>,
    pub age_group: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl User {
    pub fn is_licensed(&self) -> bool {
        !self.assigned_licenses.is_empty()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MailboxSettings {
    /// `user`, `shared`, `room`, `equipment`, ...
    pub user_purpose: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub id: String,
    pub display_name: Option<String>,
    pub mail: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub group_types: Vec<String>,
    #[serde(default)]
    pub resource_provisioning_options: Vec<String>,
    pub visibility: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Group {
    pub fn is_team(&self) -> bool {
        self.resource_provisioning_options
            .iter()
            .any(|o| o == "Team")
    }
    pub fn is_unified(&self) -> bool {
        self.group_types.iter().any(|t| t == "Unified")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MailFolder {
    pub id: String,
    pub display_name: Option<String>,
    pub parent_folder_id: Option<String>,
    #[serde(default)]
    pub child_folder_count: u32,
    #[serde(default)]
    pub total_item_count: u32,
    #[serde(default)]
    pub is_hidden: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
