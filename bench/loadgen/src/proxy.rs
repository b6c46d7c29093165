//! A TCP proxy the load generator can hang, to measure the gateway while Redis accepts
//! connections but never answers (the worst kind of outage: every call waits for a timeout).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Forwards `listen` to `target` until [`HangingProxy::hang`].
pub struct HangingProxy {
    hung: Arc<AtomicBool>,
    changed: watch::Sender<()>,
}

impl HangingProxy {
    /// Starts forwarding.
    pub async fn start(listen: &str, target: String) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let hung = Arc::new(AtomicBool::new(false));
        let (changed, _) = watch::channel(());
        let (h, c) = (hung.clone(), changed.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(forward(client, target.clone(), h.clone(), c.subscribe()));
            }
        });
        Ok(Self { hung, changed })
    }

    /// Stops answering: connections stay open and silent until [`HangingProxy::restore`].
    pub fn hang(&self) {
        self.hung.store(true, Ordering::SeqCst);
        let _ = self.changed.send(());
    }

    /// Forwards again; connections held while hung are closed.
    pub fn restore(&self) {
        self.hung.store(false, Ordering::SeqCst);
        let _ = self.changed.send(());
    }
}

async fn forward(
    mut client: TcpStream,
    target: String,
    hung: Arc<AtomicBool>,
    mut changed: watch::Receiver<()>,
) {
    if !hung.load(Ordering::SeqCst) {
        let Ok(mut server) = TcpStream::connect(&target).await else {
            return;
        };
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
            _ = async { while changed.changed().await.is_ok() && !hung.load(Ordering::SeqCst) {} } => {}
        }
    }
    // Hung: hold the client's socket without a word until restored.
    while hung.load(Ordering::SeqCst) && changed.changed().await.is_ok() {}
}
