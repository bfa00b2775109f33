//! The debug record of every object of a debug cache, kept outside the
//! objects (libumem keeps its buftag in the redzone; here the redzone holds
//! only the check pattern, so a wild write cannot forge the record).
//!
//! Records are grouped per segment, allocated when the first object of a
//! segment is handed out and dropped when the segment goes back to its
//! region (a later segment at the same address starts fresh).

use super::audit::Ring;

/// Where an object is, as the debug mode sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TagState {
    /// Free in its slab and never handed out since its segment came: holds
    /// no pattern yet.
    Fresh,
    /// Free in its slab (poisoned when the cache poisons).
    Free,
    /// Held by a user.
    User,
    /// Freed by its user into a magazine of the cache above (constructed,
    /// poisoned when the cache poisons and has no constructor).
    Cached,
}

impl TagState {
    /// Why a free of an object in this state is wrong.
    pub(crate) fn double_free_reason(self) -> &'static str {
        match self {
            TagState::Cached => "double free: the object was already freed and rests in a magazine",
            _ => "double free: the object is already free",
        }
    }
}

/// One object's record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tag {
    pub(crate) state: TagState,
}

struct SegTags {
    base: usize,
    tags: Box<[Tag]>,
    audit: Option<Box<[Ring]>>,
}

/// Where an address lies among a cache's objects.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Found {
    /// Segment index.
    pub(crate) seg: u32,
    /// Segment base.
    pub(crate) seg_base: usize,
    /// Object index in the segment.
    pub(crate) idx: u32,
    /// The object's first byte.
    pub(crate) obj: usize,
    /// Offset of the address in the object.
    pub(crate) offset: usize,
}

/// The records of a cache's objects, per segment.
pub(crate) struct Tags {
    segs: Vec<Option<SegTags>>,
    objs: u32,
    chunk: usize,
    audit: bool,
}

impl Tags {
    pub(crate) fn new(seg_count: u32, objs: u32, chunk: usize, audit: bool) -> Self {
        Tags {
            segs: (0..seg_count).map(|_| None).collect(),
            objs,
            chunk,
            audit,
        }
    }

    /// The record of object `idx` of segment `seg` (at `base`), created
    /// [`Fresh`](TagState::Fresh) with its segment's.
    pub(crate) fn get(&mut self, seg: u32, base: usize, idx: u32) -> (&mut Tag, Option<&mut Ring>) {
        let objs = self.objs as usize;
        let audit = self.audit;
        let entry = self.segs[seg as usize].get_or_insert_with(|| SegTags {
            base,
            tags: vec![
                Tag {
                    state: TagState::Fresh
                };
                objs
            ]
            .into_boxed_slice(),
            audit: audit.then(|| vec![Ring::default(); objs].into_boxed_slice()),
        });
        debug_assert_eq!(entry.base, base, "segment records of another base");
        let ring = entry.audit.as_mut().map(|a| &mut a[idx as usize]);
        (&mut entry.tags[idx as usize], ring)
    }

    /// Forgets segment `seg` (gone back to its region).
    pub(crate) fn drop_segment(&mut self, seg: u32) {
        self.segs[seg as usize] = None;
    }

    /// Where `addr` lies, when inside an object of a segment with records.
    pub(crate) fn find(&self, addr: usize) -> Option<Found> {
        let span = self.objs as usize * self.chunk;
        self.segs.iter().enumerate().find_map(|(seg, entry)| {
            let entry = entry.as_ref()?;
            let off = addr.checked_sub(entry.base)?;
            (off < span).then(|| Found {
                seg: seg as u32,
                seg_base: entry.base,
                idx: (off / self.chunk) as u32,
                obj: entry.base + off / self.chunk * self.chunk,
                offset: off % self.chunk,
            })
        })
    }

    /// Every object held by a user or resting in a magazine: address,
    /// state and audit ring.
    pub(crate) fn outstanding(&self) -> impl Iterator<Item = (usize, TagState, Option<&Ring>)> {
        let chunk = self.chunk;
        self.segs.iter().flatten().flat_map(move |entry| {
            entry
                .tags
                .iter()
                .enumerate()
                .filter(|(_, t)| matches!(t.state, TagState::User | TagState::Cached))
                .map(move |(i, t)| {
                    (
                        entry.base + i * chunk,
                        t.state,
                        entry.audit.as_ref().map(|a| &a[i]),
                    )
                })
        })
    }
}
