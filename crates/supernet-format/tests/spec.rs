//! The spec (docs/FORMAT.md) and the code agree: constants, header offsets, tags, record
//! layouts and the tensor order are read from the document and compared.

mod common;

use supernet_format::*;

fn spec() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/FORMAT.md"))
        .expect("docs/FORMAT.md")
}

/// Body rows `| a | b | c | ...` of the first table after the line that contains `heading`
/// (its header row and separator skipped).
fn table(spec: &str, heading: &str) -> Vec<Vec<String>> {
    let start = spec
        .find(heading)
        .unwrap_or_else(|| panic!("heading {heading}"));
    let mut rows = vec![];
    let mut in_table = false;
    for line in spec[start..].lines().skip(1) {
        let l = line.trim();
        if l.starts_with('|') {
            let cells: Vec<String> = l
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect();
            let header = !in_table;
            in_table = true;
            if header
                || cells
                    .iter()
                    .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
            {
                continue;
            }
            rows.push(cells);
        } else if in_table {
            break;
        }
    }
    rows
}

#[test]
fn title_names_the_version() {
    assert!(spec().starts_with(&format!(
        "# The supernet artifact format, version {VERSION_MAJOR}.{VERSION_MINOR}"
    )));
}

#[test]
fn header_table_matches_the_code() {
    let rows = table(&spec(), "## 2. Header");
    let expect = [
        (HDR_MAGIC, 8, "magic"),
        (HDR_VERSION_MAJOR, 2, "major version"),
        (HDR_VERSION_MINOR, 2, "minor version"),
        (HDR_HEADER_SIZE, 4, "header size"),
        (HDR_FILE_SIZE, 4, "file size"),
        (HDR_CHECKSUM, 4, "checksum"),
        (HDR_SECTION_COUNT, 4, "section count"),
        (HDR_SECTION_TABLE, 4, "section table offset"),
        (32, 32, "reserved"),
    ];
    assert_eq!(rows.len(), expect.len());
    for (row, (off, size, name)) in rows.iter().zip(expect) {
        assert_eq!(row[0], off.to_string(), "{row:?}");
        assert_eq!(row[1], size.to_string(), "{row:?}");
        assert_eq!(row[2], name, "{row:?}");
    }
    let magic: Vec<String> = MAGIC.iter().map(|b| format!("{b:02X}")).collect();
    assert_eq!(
        rows[0][3],
        format!("`{}` (`\\x89SNET\\r\\n\\x1a`)", magic.join(" "))
    );
    assert_eq!(rows[1][3], format!("`{VERSION_MAJOR}`"));
    assert_eq!(rows[2][3], format!("`{VERSION_MINOR}`"));
    assert!(rows[3][3].starts_with(&format!("`{HEADER_LEN}`")));
    assert!(rows[6][3].contains(&format!("to {MAX_SECTIONS}")));
}

#[test]
fn section_tags_and_alignment_match() {
    let s = spec();
    for tag in [
        TAG_SPAC, TAG_PREP, TAG_TDIR, TAG_WGHT, TAG_BNST, TAG_SUBN, TAG_META,
    ] {
        let t = std::str::from_utf8(&tag).unwrap();
        let in_heading = s
            .lines()
            .any(|l| l.starts_with("### 5.") && l.contains(&format!("`{t}`")));
        assert!(in_heading, "no section heading for {t}");
    }
    assert!(s.contains(&format!("starts at a multiple of {ALIGN}")));
    assert_eq!(
        table(&s, "## 3. Section table").len() * 4,
        SECTION_ENTRY_LEN
    );
}

#[test]
fn subnet_record_matches_the_writer() {
    let rows = table(&spec(), "A record:");
    let offsets: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        &offsets[..9],
        ["0", "4", "8", "24", "28", "32", "40", "48", "52"]
    );
    assert_eq!(
        rows[9][0],
        supernet_format::artifact::SUBN_RECORD_FIXED.to_string()
    );
    assert!(spec().contains(&format!("subnet count `N` (0 to {MAX_SUBNETS})")));
    // 1.1 appends latency_us right after the 1.0 record.
    let last = rows.last().unwrap();
    assert_eq!((last[0].as_str(), last[1].as_str()), ("`L`", "4"));
    assert!(last[2].starts_with("`latency_us` (since 1.1)"));
}

#[test]
fn space_section_matches_the_encoder() {
    let rows = table(&spec(), "### 5.1 `SPAC`");
    let last = rows.last().unwrap();
    assert_eq!(last[0], supernet_format::space::SPAC_FIXED_LEN.to_string());
    let stage = table(&spec(), "Each stage record");
    assert_eq!(stage.len(), 5);
    let stage_len: usize = stage.iter().map(|r| r[1].parse::<usize>().unwrap()).sum();
    assert_eq!(stage_len, supernet_format::space::SPAC_STAGE_LEN);
    // every fixed field's offset+size is the next field's offset
    let mut at = 0usize;
    for r in &rows[..rows.len() - 1] {
        assert_eq!(r[0], at.to_string(), "{r:?}");
        at += r[1]
            .split_whitespace()
            .next()
            .unwrap()
            .parse::<usize>()
            .unwrap();
    }
    assert_eq!(at, supernet_format::space::SPAC_FIXED_LEN);
}

#[test]
fn tensor_table_lists_the_directory_order() {
    let rows = table(&spec(), "### 5.3 `TDIR`");
    // second table of the section is the order table
    let s = spec();
    let start = s.find("in this order").unwrap();
    let order = table(&s[start - 200..], "in this order");
    let names: Vec<&str> = order.iter().map(|r| r[0].as_str()).collect();
    assert!(rows.len() >= 3);
    use supernet_format::arch::{TensorKind::*, tensors};
    let space = common::small_space();
    let kinds: Vec<_> = tensors(&space).map(|t| t.kind).collect();
    assert_eq!(kinds[0], StemWeight);
    assert_eq!(kinds[1], FirstDepthwise);
    assert_eq!(kinds[2], FirstProject);
    assert_eq!(names[0], "stem weight");
    assert_eq!(names[1], "first block depthwise");
    assert_eq!(names[2], "first block project");
    let slot_rows: Vec<&str> = names[4..names.len() - 4]
        .iter()
        .map(|n| n.trim_start_matches("&nbsp; "))
        .collect();
    assert_eq!(
        slot_rows,
        [
            "expand",
            "depthwise, one per kernel choice `k` (ascending)",
            "SE reduce weight (if SE)",
            "SE reduce bias (if SE)",
            "SE expand weight (if SE)",
            "SE expand bias (if SE)",
            "project"
        ]
    );
    assert_eq!(
        &names[names.len() - 4..],
        [
            "final expand",
            "feature mix",
            "classifier weight",
            "classifier bias"
        ]
    );
    // and the code's order within an SE slot is the same
    let b = supernet_format::arch::slot_tensor_base(&space, space.max_depth);
    let nk = space.ks.len();
    assert!(matches!(kinds[b], Expand { .. }));
    assert!(matches!(kinds[b + 1], Depthwise { .. }));
    assert!(matches!(kinds[b + 1 + nk], SeReduceWeight { .. }));
    assert!(matches!(kinds[b + 2 + nk], SeReduceBias { .. }));
    assert!(matches!(kinds[b + 3 + nk], SeExpandWeight { .. }));
    assert!(matches!(kinds[b + 4 + nk], SeExpandBias { .. }));
    assert!(matches!(kinds[b + 5 + nk], Project { .. }));
    assert_eq!(
        kinds[kinds.len() - 4..],
        [FinalExpand, FeatureMix, ClassifierWeight, ClassifierBias]
    );
}
