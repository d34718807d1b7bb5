//! Resource reservations, derived from the incomplete tasks (pulpcore's `_unblock_tasks`): no
//! lock table, no in-process lock map. Both backends read the incomplete tasks inside their
//! claim transaction and ask [`runnable`] which waiting tasks may start.
//!
//! Walking the incomplete tasks oldest first, a waiting task may start iff none of its exclusive
//! resources is taken (exclusively or shared) by an earlier incomplete task, and none of its
//! shared resources is taken exclusively by one. Every task's resources are then added to the
//! taken sets whether it may start or not, so a later task never overtakes an earlier
//! conflicting one (FIFO per resource) while shared holders run together.

use std::collections::HashSet;

use uuid::Uuid;

use crate::models::TaskState;

/// What the claim needs to know of one incomplete task.
#[derive(Debug, Clone)]
pub(crate) struct Reservation {
    pub id: Uuid,
    pub state: TaskState,
    pub exclusive: Vec<String>,
    pub shared: Vec<String>,
}

/// The waiting tasks that may start now, oldest first. `incomplete` holds every waiting,
/// running and canceling task, oldest first.
pub(crate) fn runnable(incomplete: &[Reservation]) -> Vec<Uuid> {
    let mut exclusive: HashSet<&str> = HashSet::new();
    let mut shared: HashSet<&str> = HashSet::new();
    let mut out = Vec::new();
    for t in incomplete {
        if t.state == TaskState::Waiting {
            let exclusive_free = t
                .exclusive
                .iter()
                .all(|r| !exclusive.contains(r.as_str()) && !shared.contains(r.as_str()));
            let shared_free = t.shared.iter().all(|r| !exclusive.contains(r.as_str()));
            if exclusive_free && shared_free {
                out.push(t.id);
            }
        }
        exclusive.extend(t.exclusive.iter().map(String::as_str));
        shared.extend(t.shared.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(state: TaskState, exclusive: &[&str], shared: &[&str]) -> Reservation {
        Reservation {
            id: Uuid::now_v7(),
            state,
            exclusive: exclusive.iter().map(|s| s.to_string()).collect(),
            shared: shared.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn reservations_exclusive_is_fifo() {
        let a = r(TaskState::Waiting, &["repo"], &[]);
        let b = r(TaskState::Waiting, &["repo"], &[]);
        let c = r(TaskState::Waiting, &["other"], &[]);
        assert_eq!(
            runnable(&[a.clone(), b.clone(), c.clone()]),
            vec![a.id, c.id]
        );
        let running = r(TaskState::Running, &["repo"], &[]);
        assert_eq!(runnable(&[running, b, c.clone()]), vec![c.id]);
    }

    #[test]
    fn reservations_shared_holders_run_together_and_block_writers() {
        let s1 = r(TaskState::Running, &[], &["repo"]);
        let s2 = r(TaskState::Waiting, &[], &["repo"]);
        let x = r(TaskState::Waiting, &["repo"], &[]);
        let s3 = r(TaskState::Waiting, &[], &["repo"]);
        assert_eq!(runnable(&[s1, s2.clone(), x, s3]), vec![s2.id]);
    }

    #[test]
    fn reservations_canceling_still_holds() {
        let c = r(TaskState::Canceling, &["repo"], &[]);
        let w = r(TaskState::Waiting, &[], &["repo"]);
        assert!(runnable(&[c, w]).is_empty());
    }

    #[test]
    fn reservations_no_resources_always_runnable() {
        let x = r(TaskState::Running, &["repo"], &[]);
        let free = r(TaskState::Waiting, &[], &[]);
        assert_eq!(runnable(&[x, free.clone()]), vec![free.id]);
    }
}
