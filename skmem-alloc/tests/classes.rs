//! The size-class ladder: every size from 0 to the largest class maps to a
//! class that holds it, with the documented waste bound, and every class
//! has the alignment the docs promise.

use skmem_alloc::{class_align, class_index, class_size, MAX_SMALL, NCLASSES};

#[test]
fn waste_is_under_an_eighth_of_the_request_above_64_bytes_and_under_8_below() {
    let mut worst = 0.0f64;
    for size in 0..=MAX_SMALL {
        let c = class_index(size).expect("small sizes have a class");
        let class = class_size(c).unwrap();
        assert!(class >= size.max(1), "size {size} -> class {class}");
        let waste = class - size.max(1);
        if size > 64 {
            assert!(
                waste * 8 < size,
                "size {size}: class {class} wastes {waste} bytes (>= 12.5 %)"
            );
            worst = worst.max(waste as f64 / size as f64);
        } else {
            assert!(waste <= 7, "size {size}: class {class} wastes {waste}");
        }
        // The class is the smallest that fits: the one below is too small.
        if c > 0 {
            assert!(class_size(c - 1).unwrap() < size.max(1), "size {size}");
        }
    }
    assert!(worst < 0.125, "worst waste {worst}");
    assert_eq!(class_index(MAX_SMALL + 1), None);
    assert_eq!(class_size(NCLASSES - 1), Some(MAX_SMALL));
    assert_eq!(class_size(NCLASSES), None);
}

#[test]
fn classes_grow_strictly_and_are_aligned_to_their_largest_power_of_two_divisor() {
    let mut prev = 0;
    for c in 0..NCLASSES {
        let size = class_size(c).unwrap();
        assert!(size > prev && size % 8 == 0, "class {c}: {size}");
        let align = class_align(c).unwrap();
        assert_eq!(align, (1 << size.trailing_zeros()).min(4096), "class {c}");
        prev = size;
    }
    for p in 3..=15 {
        let size = 1usize << p;
        assert_eq!(class_size(class_index(size).unwrap()), Some(size));
    }
}
