//! Dropping a region with segments still out: reported (counter + tracing
//! error naming the count), memory kept. Alone in its binary so the
//! process-wide counter is exact. Runs under Miri.

mod region_common;

use std::alloc::Layout;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use region_common::{assert_filled, fill, heap_region, SEG};
use skmem_slab::leaked_segments;
use skmem_traits::AllocFlags;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Records every event as (level, "field=value ..." text).
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<(Level, String)>>>);

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push_str(&format!("{}={} ", field.name(), value));
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        self.0
            .lock()
            .unwrap()
            .push((*event.metadata().level(), fields.0));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn dropping_a_region_with_segments_out_reports_and_keeps_them() {
    let capture = Capture::default();

    // A region dropped with nothing out reports nothing.
    let clean = heap_region("clean", 2);
    let seg = clean.alloc_segment(AllocFlags::NoSleep).unwrap();
    // SAFETY: allocated above, not used afterwards.
    unsafe { clean.free_segment(seg) };
    tracing::subscriber::with_default(capture.clone(), || drop(clean));
    assert_eq!(leaked_segments(), 0);
    assert!(
        !capture
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|(l, _)| *l == Level::ERROR),
        "no error for a clean drop"
    );

    let leaky = heap_region("leaky", 3);
    let a = leaky.alloc_segment(AllocFlags::NoSleep).unwrap();
    let b = leaky.alloc_segment(AllocFlags::NoSleep).unwrap();
    fill(a.base, SEG, 0x5A);
    let extra = Arc::clone(&leaky);
    // Not the last reference: nothing happens yet.
    drop(leaky);
    assert_eq!(leaked_segments(), 0);
    tracing::subscriber::with_default(capture.clone(), || drop(extra));
    assert_eq!(
        leaked_segments(),
        2,
        "both outstanding segments are counted"
    );

    let events = capture.0.lock().unwrap().clone();
    let errors: Vec<_> = events.iter().filter(|(l, _)| *l == Level::ERROR).collect();
    assert_eq!(errors.len(), 1, "{events:?}");
    let text = &errors[0].1;
    assert!(text.contains("region=leaky"), "{text}");
    assert!(text.contains("outstanding=2"), "{text}");

    // The leaked memory is still valid: the region kept (leaked) it.
    assert_filled(a.base, SEG, 0x5A);
    fill(b.base, SEG, 0xA5);
    assert_filled(b.base, SEG, 0xA5);
    // Give it back by hand so leak checkers (Miri) stay quiet: the heap
    // backend allocates each segment with the layout (seg_size, align).
    let layout = Layout::from_size_align(SEG, 64).unwrap();
    for seg in [a, b] {
        // SAFETY: the segment came from the global allocator with `layout`
        // (heap backend contract) and its region no longer exists.
        unsafe { std::alloc::dealloc(seg.base.as_ptr(), layout) };
    }
}
