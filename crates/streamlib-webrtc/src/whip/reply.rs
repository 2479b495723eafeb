//! A one-shot reply from the session thread to an HTTP route: the thread answers with a
//! plain call, the route awaits it without blocking the server's runtime.
//!
//! (tokio's `oneshot` does the same; this crate does not depend on tokio, only on the
//! HTTP crate that runs it.)

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
    /// The sender was dropped without answering.
    closed: bool,
}

/// The answering side; dropping it unanswered wakes the receiver with `None`.
pub(crate) struct ReplySender<T>(Arc<Mutex<Slot<T>>>);

/// The awaiting side: resolves to the answer, or `None` if the sender went away.
pub(crate) struct ReplyReceiver<T>(Arc<Mutex<Slot<T>>>);

pub(crate) fn channel<T>() -> (ReplySender<T>, ReplyReceiver<T>) {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
        closed: false,
    }));
    (ReplySender(Arc::clone(&slot)), ReplyReceiver(slot))
}

impl<T> ReplySender<T> {
    /// Hands `value` to the receiver (dropped if it is gone).
    pub(crate) fn send(self, value: T) {
        let waker = {
            let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            slot.value = Some(value);
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Drop for ReplySender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            slot.closed = true;
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Future for ReplyReceiver<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(value) = slot.value.take() {
            return Poll::Ready(Some(value));
        }
        if slot.closed {
            return Poll::Ready(None);
        }
        slot.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Wake;

    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn poll_once<T>(rx: &mut ReplyReceiver<T>, flag: &Arc<Flag>) -> Poll<Option<T>> {
        let waker = Waker::from(Arc::clone(flag));
        Pin::new(rx).poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn an_answer_wakes_the_receiver_and_a_dropped_sender_ends_it() {
        let flag = Arc::new(Flag(false.into()));
        let (tx, mut rx) = channel();
        assert!(poll_once(&mut rx, &flag).is_pending());
        tx.send(7);
        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(poll_once(&mut rx, &flag), Poll::Ready(Some(7)));
        let (tx, mut rx) = channel::<u8>();
        assert!(poll_once(&mut rx, &flag).is_pending());
        drop(tx);
        assert_eq!(poll_once(&mut rx, &flag), Poll::Ready(None));
    }
}
