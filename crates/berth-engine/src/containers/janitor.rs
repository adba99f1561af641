//! Work nobody waits for: a removed container's shim directory, rootfs mount and files. One
//! thread at nice 19 does it in order, so that it takes only what the runs in progress leave of
//! the CPUs (back to back `run --rm`s otherwise paid for the last one's teardown). A daemon that
//! stops finishes the queue first ([`Janitor::drain`]); one that dies with jobs queued leaves
//! directories in no record, which the next start deletes (`Containers::open`).

use std::sync::mpsc::{channel, Sender};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

type Job = Box<dyn FnOnce() + Send>;

/// The teardown thread, started on first use.
#[derive(Default)]
pub struct Janitor {
    tx: Mutex<Option<(Sender<Job>, JoinHandle<()>)>>,
}

impl Janitor {
    /// Queues `job`; runs it on the calling thread if the janitor's cannot be started.
    pub fn run(&self, job: impl FnOnce() + Send + 'static) {
        let job: Job = Box::new(job);
        let mut g = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            let (tx, rx) = channel::<Job>();
            let spawned = std::thread::Builder::new()
                .name("teardown".into())
                .spawn(move || {
                    let _ = rustix::process::setpriority_process(None, 19);
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                });
            if let Ok(handle) = spawned {
                *g = Some((tx, handle));
            }
        }
        let job = match g.as_ref() {
            Some((tx, _)) => match tx.send(job) {
                Ok(()) => return,
                Err(e) => {
                    *g = None;
                    e.0
                }
            },
            None => job,
        };
        drop(g);
        job();
    }

    /// Lets the queued jobs finish (the daemon stops), waiting at most `limit`; true if they did.
    pub fn drain(&self, limit: Duration) -> bool {
        let taken = self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some((tx, handle)) = taken else {
            return true;
        };
        drop(tx); // the thread ends once the queue is empty
        let deadline = Instant::now() + limit;
        while !handle.is_finished() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = handle.join();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_in_order_on_a_thread_at_the_lowest_priority() {
        let j = Janitor::default();
        let (tx, rx) = channel();
        for i in 0..3 {
            let tx = tx.clone();
            j.run(move || {
                let nice = rustix::process::getpriority_process(None).unwrap_or(0);
                let name = std::thread::current().name().map(str::to_string);
                let _ = tx.send((i, nice, name));
            });
        }
        assert!(j.drain(Duration::from_secs(10)));
        let got: Vec<_> = (0..3).map(|_| rx.try_recv().unwrap()).collect();
        for (k, (i, nice, name)) in got.into_iter().enumerate() {
            assert_eq!(i, k);
            assert_eq!(nice, 19);
            assert_eq!(name.as_deref(), Some("teardown"));
        }
        // After a drain, a new job gets a new thread.
        j.run(move || {
            let _ = tx.send((3, 0, None));
        });
        assert!(j.drain(Duration::from_secs(10)));
        assert_eq!(rx.try_recv().unwrap().0, 3);
    }
}
