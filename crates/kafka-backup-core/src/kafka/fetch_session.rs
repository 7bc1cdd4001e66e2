//! A fetch session with one broker (KIP-227): the broker remembers which partitions a fetcher reads
//! and from where, so a request names only the partitions whose position changed and an answer only
//! the partitions that moved. A session the broker lost (restart, eviction) starts again in full.

use std::collections::{HashMap, HashSet};

/// A partition of the session: topic and partition index.
pub(super) type PartitionKey = (String, i32);

/// A partition a round wants: from which offset, at most how many bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Want {
    pub key: PartitionKey,
    pub offset: i64,
    pub max_bytes: i32,
}

/// The marks of a partition's log, as last answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Marks {
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
}

/// The marks of a partition the broker has not answered for yet.
pub(super) const UNKNOWN_MARKS: Marks = Marks { high_watermark: -1, last_stable_offset: -1, log_start_offset: -1 };

/// What the next request of the session says.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct SessionRequest {
    /// 0 to ask for a new session (with epoch 0): a full request.
    pub session_id: i32,
    pub epoch: i32,
    /// The partitions named, with their position.
    pub send: Vec<Want>,
    /// The partitions the session drops.
    pub forget: Vec<PartitionKey>,
}

impl SessionRequest {
    /// True when the request names every partition wanted (no session yet, or a new one).
    pub fn is_full(&self) -> bool {
        self.session_id == 0
    }
}

/// What the broker holds for a partition of the session.
#[derive(Debug, Clone, Copy)]
struct Held {
    /// Where the broker reads it from; -1 after an error, so that the next request names it again.
    offset: i64,
    max_bytes: i32,
    marks: Marks,
}

/// Error codes that say the broker no longer has the session as we know it.
const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const INVALID_FETCH_SESSION_EPOCH: i16 = 71;
/// The session was opened naming topics one way (names or ids) and a request names them the other.
const FETCH_SESSION_TOPIC_ID_ERROR: i16 = 106;

/// The session state of one broker's fetcher.
#[derive(Debug, Default)]
pub(super) struct FetchSession {
    /// 0: no session; the next request is full.
    id: i32,
    /// The epoch of the next incremental request.
    epoch: i32,
    held: HashMap<PartitionKey, Held>,
}

impl FetchSession {
    /// The request for `wanted` (one entry per partition): every partition when there is no
    /// session, else the ones new to it or moved, and the ones it holds that are no longer wanted
    /// (their tasks are busy, or they moved to another broker).
    pub fn request(&self, wanted: &[Want]) -> SessionRequest {
        if self.id == 0 {
            return SessionRequest { session_id: 0, epoch: 0, send: wanted.to_vec(), forget: Vec::new() };
        }
        let send = wanted
            .iter()
            .filter(|want| {
                self.held
                    .get(&want.key)
                    .is_none_or(|held| (held.offset, held.max_bytes) != (want.offset, want.max_bytes))
            })
            .cloned()
            .collect();
        let asked: HashSet<&PartitionKey> = wanted.iter().map(|want| &want.key).collect();
        let forget = self.held.keys().filter(|key| !asked.contains(key)).cloned().collect();
        SessionRequest { session_id: self.id, epoch: self.epoch, send, forget }
    }

    /// Takes in the broker's answer to `request` (made for `wanted`): the session id it gave (0:
    /// none) and the marks of the partitions it answered. The session then holds what was wanted.
    pub fn answered(
        &mut self,
        request: &SessionRequest,
        wanted: &[Want],
        session_id: i32,
        marks: impl IntoIterator<Item = (PartitionKey, Marks)>,
    ) {
        if request.is_full() {
            self.id = session_id;
            self.epoch = 1;
        } else if session_id != request.session_id {
            self.reset();
            return;
        } else {
            self.epoch = if self.epoch == i32::MAX { 1 } else { self.epoch + 1 };
        }
        let mut held = HashMap::with_capacity(wanted.len());
        for want in wanted {
            let marks = self.held.get(&want.key).map_or(UNKNOWN_MARKS, |held| held.marks);
            held.insert(want.key.clone(), Held { offset: want.offset, max_bytes: want.max_bytes, marks });
        }
        self.held = held;
        for (key, marks) in marks {
            if let Some(held) = self.held.get_mut(&key) {
                held.marks = marks;
            }
        }
        if self.id == 0 {
            self.held.clear();
        }
    }

    /// The marks last answered for a partition of the session (an incremental answer leaves out
    /// the partitions where nothing moved).
    pub fn marks(&self, key: &PartitionKey) -> Marks {
        self.held.get(key).map_or(UNKNOWN_MARKS, |held| held.marks)
    }

    /// A partition answered with an error: the next request names it again (or drops it).
    pub fn partition_failed(&mut self, key: &PartitionKey) {
        if let Some(held) = self.held.get_mut(key) {
            held.offset = -1;
        }
    }

    /// Forgets the session: the next request is full and asks for a new one.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// True when `error_code` (a whole response's) says the broker lost or refused the session:
    /// the round is sent again in full.
    pub fn is_lost(error_code: i16) -> bool {
        matches!(error_code, FETCH_SESSION_ID_NOT_FOUND | INVALID_FETCH_SESSION_EPOCH | FETCH_SESSION_TOPIC_ID_ERROR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(topic: &str, partition: i32, offset: i64) -> Want {
        Want { key: (topic.to_string(), partition), offset, max_bytes: 1024 }
    }

    fn marks(high_watermark: i64) -> Marks {
        Marks { high_watermark, last_stable_offset: high_watermark, log_start_offset: 0 }
    }

    /// A session after one full round over `wanted`, with id 7.
    fn opened(wanted: &[Want]) -> FetchSession {
        let mut session = FetchSession::default();
        let request = session.request(wanted);
        session.answered(&request, wanted, 7, wanted.iter().map(|w| (w.key.clone(), marks(w.offset))));
        session
    }

    #[test]
    fn the_first_request_is_full_and_asks_for_a_session() {
        let wanted = [want("a", 0, 5), want("a", 1, 9)];
        let request = FetchSession::default().request(&wanted);
        assert_eq!((request.session_id, request.epoch), (0, 0));
        assert_eq!(request.send, wanted);
        assert!(request.forget.is_empty());
    }

    #[test]
    fn an_incremental_request_names_only_moved_new_and_dropped_partitions() {
        let session = opened(&[want("a", 0, 5), want("a", 1, 9), want("b", 0, 1)]);
        // a-0 unchanged, a-1 moved, b-0 busy (not wanted), c-3 new.
        let request = session.request(&[want("a", 0, 5), want("a", 1, 12), want("c", 3, 0)]);
        assert_eq!((request.session_id, request.epoch), (7, 1));
        assert_eq!(request.send, vec![want("a", 1, 12), want("c", 3, 0)]);
        assert_eq!(request.forget, vec![("b".to_string(), 0)]);
        let mut bigger = want("a", 0, 5);
        bigger.max_bytes = 4096;
        assert_eq!(session.request(&[bigger.clone()]).send, vec![bigger], "a new size is a change");
    }

    #[test]
    fn epochs_advance_with_each_answer_and_wrap_to_one() {
        let wanted = [want("a", 0, 5)];
        let mut session = opened(&wanted);
        for expected in 1..4 {
            let request = session.request(&wanted);
            assert_eq!(request.epoch, expected);
            session.answered(&request, &wanted, 7, []);
        }
        session.epoch = i32::MAX;
        let request = session.request(&wanted);
        session.answered(&request, &wanted, 7, []);
        assert_eq!(session.request(&wanted).epoch, 1);
    }

    #[test]
    fn marks_of_partitions_left_out_of_an_answer_are_the_last_ones_given() {
        let wanted = [want("a", 0, 5), want("a", 1, 9)];
        let mut session = opened(&wanted);
        let request = session.request(&wanted);
        session.answered(&request, &wanted, 7, [(("a".to_string(), 1), marks(20))]);
        assert_eq!(session.marks(&("a".to_string(), 0)), marks(5));
        assert_eq!(session.marks(&("a".to_string(), 1)), marks(20));
        assert_eq!(session.marks(&("z".to_string(), 0)), UNKNOWN_MARKS);
    }

    #[test]
    fn a_broker_without_sessions_gets_full_requests_every_time() {
        let wanted = [want("a", 0, 5)];
        let mut session = FetchSession::default();
        let request = session.request(&wanted);
        session.answered(&request, &wanted, 0, [(("a".to_string(), 0), marks(5))]);
        let again = session.request(&wanted);
        assert!(again.is_full());
        assert_eq!(again.send, wanted);
    }

    #[test]
    fn a_lost_session_or_a_changed_id_starts_over_in_full() {
        assert!(FetchSession::is_lost(70) && FetchSession::is_lost(71) && !FetchSession::is_lost(0));
        let wanted = [want("a", 0, 5)];
        let mut session = opened(&wanted);
        let request = session.request(&wanted);
        session.answered(&request, &wanted, 8, []);
        assert!(session.request(&wanted).is_full(), "an answer from another session");
        let mut session = opened(&wanted);
        session.reset();
        assert_eq!(session.request(&wanted).send, wanted);
    }

    #[test]
    fn a_failed_partition_is_named_again_or_dropped() {
        let wanted = [want("a", 0, 5), want("a", 1, 9)];
        let mut session = opened(&wanted);
        session.partition_failed(&("a".to_string(), 1));
        assert_eq!(session.request(&wanted).send, vec![want("a", 1, 9)]);
        assert_eq!(session.request(&wanted[..1]).forget, vec![("a".to_string(), 1)]);
    }
}
