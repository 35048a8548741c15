//! The dashboard's WSB tab in a real headless Chromium (the WebDriver client of
//! `dashboard.rs`): STAR's certificate, a message sent from the form failing at a webhook
//! (hyper + rustls, requiring STAR's client certificate) while a later one for the same
//! citizen is held back, both delivered in order once the webhook recovers, a replay from the
//! table, and the supplier's check "receives STAR's messages" complete, all without a reload.
//! Leaves screenshots in target/dashboard-wsb.png and target/dashboard-wsb-deliveries.png.

use std::sync::atomic::Ordering;

use crate::dashboard::{artifact, Browser, Chromedriver};
use crate::suites::{self, Suite};
use crate::wsb_served::{compressed, gated, Rehearsal, SUPPLIER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wsb_dashboard_tab_shows_deliveries_live_and_the_supplier_check_completes() {
    if suites::require(Suite::Browser, suites::chromium()).is_none() {
        return;
    }
    let (mode, open) = gated();
    let rehearsal = Rehearsal::start(mode, compressed(""), None).await;
    rehearsal.subscribe().await;
    let dashboard = format!("http://{}/", rehearsal.server.admin());
    let sha256 = rehearsal
        .server
        .app
        .wsb()
        .unwrap()
        .star_thumbprints()
        .sha256
        .hex();
    let supplier = format!("[data-supplier='{SUPPLIER}']");

    tokio::task::spawn_blocking(move || {
        let driver = Chromedriver::start();
        let browser = Browser::open(&driver);
        browser.go(&dashboard);
        browser.wait_for("#live.on");
        browser.script("window.__sameDocument = 'yes'");
        browser.click("#tab-wsb");
        assert_eq!(browser.text("#wsb-star-sha256"), sha256);
        browser.wait_for(&format!("{supplier} [data-check='wsb_c_delivered'].todo"));

        // Sent from the form: the webhook answers 500, so it retries.
        browser.click("#wsb-send button[type=submit]");
        browser.wait_for("#wsb-delivery-1 .badge.warn");
        assert!(browser.text("#wsb-sent").contains("1"));
        // A second for the same citizen waits behind it.
        browser.click("#wsb-send button[type=submit]");
        browser.wait_for("#wsb-delivery-2");
        assert!(
            browser.text("#wsb-delivery-2").contains("1"),
            "{}",
            browser.text("#wsb-delivery-2")
        );
        let held = browser.text("#wsb-delivery-2");
        assert!(
            held.contains("holdt tilbage bag 1") || held.contains("held back behind 1"),
            "{held}"
        );

        // The webhook recovers: both delivered, the first on a retry.
        open.store(true, Ordering::SeqCst);
        browser.wait_for("#wsb-delivery-2 .badge.ok");
        browser.wait_for("#wsb-delivery-1 .badge.ok");
        browser.wait_for(&format!("{supplier} [data-check='wsb_c_retried'].done"));

        // A replay from the table is the duplicate.
        browser.click("#wsb-delivery-1 button");
        browser.wait_for("#wsb-delivery-3 .badge.ok");
        browser.wait_for(&format!("{supplier}.complete"));

        // The first delivery's attempts: 500s, then 200, with the webhook's certificate.
        browser.click("#wsb-delivery-1");
        browser.wait_for("#wsb-attempts [data-attempt='2']");
        let attempts = browser.text("#wsb-attempts");
        assert!(attempts.contains("HTTP 500"), "{attempts}");
        assert!(attempts.contains("HTTP 200"), "{attempts}");
        assert!(attempts.contains("CN=127.0.0.1"), "{attempts}");
        assert_eq!(browser.script("return window.__sameDocument"), "yes");

        browser.click("#lang-en");
        assert!(browser
            .text(&format!("{supplier} [data-check='wsb_c_duplicate']"))
            .contains("A duplicate handled"));
        browser.script("window.scrollTo(0, 0)");
        browser.screenshot(&artifact("dashboard-wsb.png"));
        browser.script("document.getElementById('wsb-deliveries').scrollIntoView()");
        browser.screenshot(&artifact("dashboard-wsb-deliveries.png"));
    })
    .await
    .unwrap();
}
