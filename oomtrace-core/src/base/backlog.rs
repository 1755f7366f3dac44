//! [`Backlog`]: a queue bounded in bytes, drained by a thread of its own,
//! so that the event loop hands work off without ever waiting for it.
//!
//! The loop pushes; when the bytes queued (including the batch the thread
//! is working on) would pass the bound, the push is refused and the caller
//! counts the drop. An item pushed onto an empty backlog is always taken,
//! however large, so one big record never starves. Items are handled in
//! the order they were pushed.
use std::{
    collections::VecDeque,
    io,
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread::JoinHandle,
    time::{Duration, Instant},
};

struct State<T> {
    items: VecDeque<(T, usize)>,
    /// Bytes queued or being worked on.
    bytes: usize,
    closing: bool,
    /// The thread has returned: all done, or failed.
    finished: bool,
    /// Why the worker stopped, if it failed (kind and message).
    failure: Option<(io::ErrorKind, String)>,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    changed: Condvar,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panicking worker leaves consistent counters: keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How closing ended.
#[derive(Debug)]
pub enum Closed {
    /// Everything was handled (or the worker failed: its error).
    Done(Result<(), io::Error>),
    /// The worker was still busy when the grace ran out; `pending` items
    /// were never handled.
    TimedOut { pending: usize },
}

pub struct Backlog<T> {
    shared: Arc<Shared<T>>,
    bound: usize,
    thread: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Backlog<T> {
    /// Starts thread `name`, which hands `work` each batch of items, in
    /// order; their bytes count against the bound until `work` returns. An error from `work` stops the thread; the
    /// backlog then refuses everything and [`failure`](Self::failure) says why.
    pub fn spawn(
        name: &str,
        bound: usize,
        work: impl FnMut(Vec<T>) -> io::Result<()> + Send + 'static,
    ) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                items: VecDeque::new(),
                bytes: 0,
                closing: false,
                finished: false,
                failure: None,
            }),
            changed: Condvar::new(),
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || drain(&worker, work))?;
        Ok(Self {
            shared,
            bound,
            thread: Some(thread),
        })
    }
}

impl<T> Backlog<T> {
    /// Queues `item` of `bytes` unless that passes the bound (an empty
    /// backlog takes anything) or the worker has stopped; gives it back if not.
    pub fn try_push(&self, item: T, bytes: usize) -> Result<(), T> {
        let mut state = self.shared.lock();
        let room = state.bytes == 0 || state.bytes + bytes <= self.bound;
        if !room || state.finished {
            return Err(item);
        }
        state.bytes += bytes;
        state.items.push_back((item, bytes));
        drop(state);
        self.shared.changed.notify_all();
        Ok(())
    }

    /// Why the worker stopped, if it failed.
    pub fn failure(&self) -> Option<io::Error> {
        let state = self.shared.lock();
        state
            .failure
            .as_ref()
            .map(|(kind, message)| io::Error::new(*kind, message.clone()))
    }

    /// Bytes queued or being worked on.
    pub fn queued_bytes(&self) -> usize {
        self.shared.lock().bytes
    }

    /// The bound, in bytes.
    pub fn bound(&self) -> usize {
        self.bound
    }

    /// No more items: waits until the worker has handled every queued one,
    /// at most `grace` if given.
    pub fn close(mut self, grace: Option<Duration>) -> Closed {
        self.shared.lock().closing = true;
        self.shared.changed.notify_all();
        let deadline = grace.map(|grace| Instant::now() + grace);
        let mut state = self.shared.lock();
        while !state.finished {
            state = match deadline {
                None => self
                    .shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                        return Closed::TimedOut {
                            pending: state.items.len(),
                        };
                    };
                    self.shared
                        .changed
                        .wait_timeout(state, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
        let failure = state.failure.take();
        drop(state);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        Closed::Done(match failure {
            Some((kind, message)) => Err(io::Error::new(kind, message)),
            None => Ok(()),
        })
    }
}

/// The worker: batches until closed and empty, or until `work` fails.
fn drain<T>(shared: &Shared<T>, mut work: impl FnMut(Vec<T>) -> io::Result<()>) {
    loop {
        let mut state = shared.lock();
        while state.items.is_empty() && !state.closing {
            state = shared
                .changed
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
        if state.items.is_empty() {
            state.finished = true;
            drop(state);
            shared.changed.notify_all();
            return;
        }
        let size: usize = state.items.iter().map(|(_, bytes)| bytes).sum();
        let batch: Vec<T> = state.items.drain(..).map(|(item, _)| item).collect();
        drop(state);
        let result = work(batch);
        let mut state = shared.lock();
        state.bytes -= size;
        if let Err(e) = result {
            state.failure = Some((e.kind(), e.to_string()));
            state.finished = true;
            state.items.clear();
            state.bytes = 0;
            drop(state);
            shared.changed.notify_all();
            return;
        }
        drop(state);
        shared.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    /// A worker that handles nothing until told to, then records what it got.
    fn gated(bound: usize) -> (Backlog<u32>, mpsc::Sender<()>, mpsc::Receiver<u32>) {
        let (open, gate) = mpsc::channel::<()>();
        let (done, handled) = mpsc::channel();
        let backlog = Backlog::spawn("test", bound, move |batch: Vec<u32>| {
            let _ = gate.recv();
            for item in batch {
                done.send(item).unwrap();
            }
            Ok(())
        })
        .unwrap();
        (backlog, open, handled)
    }

    #[test]
    fn a_full_backlog_refuses_and_keeps_the_order_of_what_it_took() {
        let (backlog, open, handled) = gated(100);
        // The first item may already be with the worker: it still counts.
        let mut taken = Vec::new();
        let mut refused = Vec::new();
        for i in 0..10 {
            match backlog.try_push(i, 30) {
                Ok(()) => taken.push(i),
                Err(item) => refused.push(item),
            }
        }
        // 30 bytes each under a 100-byte bound: three fit, whoever holds them.
        assert_eq!(taken, [0, 1, 2]);
        assert_eq!(refused, (3..10).collect::<Vec<_>>());
        for _ in 0..10 {
            let _ = open.send(());
        }
        assert!(matches!(backlog.close(None), Closed::Done(Ok(()))));
        assert_eq!(handled.iter().collect::<Vec<_>>(), taken);
    }

    #[test]
    fn an_empty_backlog_takes_an_item_larger_than_the_bound() {
        let (backlog, open, handled) = gated(10);
        assert!(backlog.try_push(1, 1000).is_ok());
        assert_eq!(backlog.try_push(2, 1), Err(2));
        open.send(()).unwrap();
        assert!(matches!(backlog.close(None), Closed::Done(Ok(()))));
        assert_eq!(handled.iter().collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn a_failed_worker_refuses_everything_and_says_why() {
        let backlog = Backlog::spawn("test", 100, |_: Vec<u32>| {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        })
        .unwrap();
        backlog.try_push(1, 1).unwrap();
        let failed = loop {
            if let Some(e) = backlog.failure() {
                break e;
            }
            std::thread::yield_now();
        };
        assert_eq!(failed.kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(backlog.try_push(2, 1), Err(2));
        match backlog.close(None) {
            Closed::Done(Err(e)) => assert_eq!(e.kind(), io::ErrorKind::BrokenPipe),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn closing_a_stuck_worker_gives_up_after_the_grace() {
        let (backlog, _open, _handled) = gated(100);
        backlog.try_push(1, 1).unwrap();
        backlog.try_push(2, 1).unwrap();
        match backlog.close(Some(Duration::from_millis(50))) {
            Closed::TimedOut { .. } => {}
            other => panic!("{other:?}"),
        }
    }
}
