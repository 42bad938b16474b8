//! The keys the user signed in with, one per project, kept in the browser's localStorage
//! (`spindle.accounts`, `spindle.current`), and the current one. Shared through a Yew context.

use std::rc::Rc;

use serde::{Deserialize, Serialize};
use yew::{Reducible, UseReducerHandle};

const ACCOUNTS_KEY: &str = "spindle.accounts";
const CURRENT_KEY: &str = "spindle.current";

/// A key and the project it reads, as `viewer` told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub project_id: String,
    pub workspace_id: String,
    pub key_prefix: String,
    pub key: String,
}

/// Every stored account and the project in use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Accounts {
    pub list: Vec<Account>,
    pub current: Option<String>,
}

/// What changes the accounts.
pub enum AccountAction {
    /// A key was checked: store it (replacing the project's old key) and use it.
    SignedIn(Account),
    /// Use another stored project.
    Switch(String),
    /// Forget the current project's key; the next stored one (if any) becomes current.
    SignOut,
}

/// The context the app provides.
pub type AccountsHandle = UseReducerHandle<Accounts>;

impl Accounts {
    /// The stored accounts (none when storage is unavailable or holds something else).
    pub fn load() -> Accounts {
        let Some(storage) = storage() else {
            return Accounts::default();
        };
        let list: Vec<Account> = storage
            .get_item(ACCOUNTS_KEY)
            .ok()
            .flatten()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        let current = storage
            .get_item(CURRENT_KEY)
            .ok()
            .flatten()
            .filter(|project| list.iter().any(|a| &a.project_id == project))
            .or_else(|| list.first().map(|a| a.project_id.clone()));
        Accounts { list, current }
    }

    /// The account in use.
    pub fn current(&self) -> Option<&Account> {
        let project = self.current.as_ref()?;
        self.list.iter().find(|a| &a.project_id == project)
    }

    fn save(&self) {
        let Some(storage) = storage() else {
            return;
        };
        if let Ok(text) = serde_json::to_string(&self.list) {
            let _ = storage.set_item(ACCOUNTS_KEY, &text);
        }
        let _ = match &self.current {
            Some(project) => storage.set_item(CURRENT_KEY, project),
            None => storage.remove_item(CURRENT_KEY),
        };
    }
}

impl Reducible for Accounts {
    type Action = AccountAction;

    fn reduce(self: Rc<Self>, action: AccountAction) -> Rc<Self> {
        let mut next = (*self).clone();
        match action {
            AccountAction::SignedIn(account) => {
                next.current = Some(account.project_id.clone());
                match next
                    .list
                    .iter_mut()
                    .find(|a| a.project_id == account.project_id)
                {
                    Some(existing) => *existing = account,
                    None => next.list.push(account),
                }
            }
            AccountAction::Switch(project) => {
                if next.list.iter().any(|a| a.project_id == project) {
                    next.current = Some(project);
                }
            }
            AccountAction::SignOut => {
                if let Some(project) = next.current.take() {
                    next.list.retain(|a| a.project_id != project);
                }
                next.current = next.list.first().map(|a| a.project_id.clone());
            }
        }
        next.save();
        Rc::new(next)
    }
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}
