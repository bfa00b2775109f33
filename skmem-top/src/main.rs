//! `skmem-top`: see the library docs (`skmem_top`) for usage.

use std::io::Write;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyCode, KeyEventKind};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Row, Sparkline, Table, TableState};
use ratatui::{DefaultTerminal, Frame};
use skmem_stats::{ReadError, Reader, Snapshot};
use skmem_top::view::{Column, View};

const USAGE: &str = "usage: skmem-top PID | skmem-top --demo | skmem-top --once --json PID
  PID            attach to a process that publishes its stats (SKMEM_STATS=publish)
  --demo         run the demo workload in a child process and attach to it
  --once --json  print one snapshot as JSON and exit
  --interval-ms N  refresh every N ms (default 1000)
keys: s sort column, r reverse, / filter by name, up/down select, q quit";

struct Args {
    pid: Option<u32>,
    demo: bool,
    demo_child: bool,
    once: bool,
    json: bool,
    interval: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        pid: None,
        demo: false,
        demo_child: false,
        once: false,
        json: false,
        interval: Duration::from_secs(1),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--demo" => a.demo = true,
            "--demo-child" => a.demo_child = true,
            "--once" => a.once = true,
            "--json" => a.json = true,
            "--interval-ms" => {
                let v = it.next().ok_or("--interval-ms needs a value")?;
                let ms: u64 = v
                    .parse()
                    .map_err(|_| format!("--interval-ms: {v:?} is not a number of milliseconds"))?;
                if ms == 0 {
                    return Err("--interval-ms must be at least 1".into());
                }
                a.interval = Duration::from_millis(ms);
            }
            "-h" | "--help" => return Err(String::new()),
            p => {
                let pid = p
                    .parse()
                    .map_err(|_| format!("{p:?} is neither an option nor a process id"))?;
                a.pid = Some(pid);
            }
        }
    }
    if a.json && !a.once {
        return Err("--json goes with --once".into());
    }
    if !a.demo && !a.demo_child && a.pid.is_none() {
        return Err("which process? give a PID or --demo".into());
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("skmem-top: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.demo_child {
        return match skmem_top::demo::run_child(Duration::from_millis(500)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("skmem-top demo: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut child = None;
    let pid = if args.demo {
        match start_demo() {
            Ok(c) => {
                let pid = c.id();
                child = Some(c);
                pid
            }
            Err(e) => {
                eprintln!("skmem-top: starting the demo: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        args.pid.unwrap_or(0)
    };
    let code = attach_and_run(pid, &args, child.is_some());
    if let Some(mut c) = child {
        let _ = c.kill();
        let _ = c.wait();
    }
    code
}

/// Starts `skmem-top --demo-child` (this binary) with its output discarded.
fn start_demo() -> std::io::Result<Child> {
    Command::new(std::env::current_exe()?)
        .arg("--demo-child")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

fn attach_and_run(pid: u32, args: &Args, demo: bool) -> ExitCode {
    // A demo child needs a moment to build its caches and publish.
    let deadline = Instant::now() + Duration::from_secs(if demo { 10 } else { 0 });
    let reader = loop {
        match Reader::attach(pid) {
            Ok(r) => break r,
            Err(ReadError::NotPublishing(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                eprintln!("skmem-top: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    if args.once {
        // The demo child maps its stats file before its publisher thread
        // writes the first snapshot (generation 0 is empty): wait for one
        // rather than print nothing.
        let mut snap = reader.read();
        while matches!(&snap, Ok(s) if s.generation == 0) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            snap = reader.read();
        }
        return match snap {
            Ok(snap) => {
                let json = snapshot_json(&snap);
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("skmem-top: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut terminal = ratatui::init();
    let result = run_tui(&mut terminal, &reader, args.interval);
    ratatui::restore();
    match result {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(e)) => {
            eprintln!("skmem-top: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("skmem-top: terminal: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One snapshot as a JSON object: `pid`, `generation`, `caches` (each
/// with `name` and `obj_size` on top of every [`CacheStats`] field),
/// `slabs` (slab caches used on their own), `regions`, `pools`, `arenas`
/// and `other`.
fn snapshot_json(snap: &Snapshot) -> serde_json::Value {
    use serde_json::{json, Value};
    let mut caches = Vec::new();
    let (mut slabs, mut regions, mut pools, mut arenas, mut other) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for e in &snap.entries {
        match &e.stats {
            skmem_stats::Stats::Cache(c) => {
                let mut v = serde_json::to_value(c).unwrap_or(Value::Null);
                if let Value::Object(m) = &mut v {
                    m.insert("obj_size".into(), json!(c.slab.objsize));
                    m.insert("objs_in_use".into(), json!(c.objs_in_use()));
                    m.insert("objs_total".into(), json!(c.objs_total()));
                }
                caches.push(v);
            }
            skmem_stats::Stats::Slab(s) => slabs.push(json!(s)),
            skmem_stats::Stats::Region(r) => regions.push(json!(r)),
            skmem_stats::Stats::Pool(p) => pools.push(json!(p)),
            skmem_stats::Stats::Arena(a) => arenas.push(json!(a)),
            s => other.push(json!(s)),
        }
    }
    json!({
        "pid": snap.pid,
        "generation": snap.generation,
        "time_ns": snap.time_ns,
        "dropped": snap.dropped,
        "caches": caches,
        "slabs": slabs,
        "regions": regions,
        "pools": pools,
        "arenas": arenas,
        "other": other,
    })
}

#[derive(Default)]
struct Ui {
    view: View,
    table: TableState,
    editing_filter: Option<String>,
    problem: Option<String>,
}

/// Runs the screen until `q`; returns the error that ended the watch
/// (peer gone) when the user quits after it.
fn run_tui(
    terminal: &mut DefaultTerminal,
    reader: &Reader,
    interval: Duration,
) -> std::io::Result<Option<String>> {
    let mut ui = Ui::default();
    ui.table.select(Some(0));
    let mut next = Instant::now();
    loop {
        if Instant::now() >= next && ui.problem.is_none() {
            match reader.read() {
                Ok(snap) => ui.view.update(&snap),
                Err(e) => ui.problem = Some(e.to_string()),
            }
            next = Instant::now() + interval;
        }
        terminal.draw(|f| draw(f, &mut ui, reader.pid().unwrap_or(0)))?;
        let wait = next
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(10));
        if !event::poll(wait)? {
            continue;
        }
        let Event::Key(key) = event::read()? else {
            continue;
        };
        if key.kind != KeyEventKind::Press {
            continue;
        }
        if let Some(f) = &mut ui.editing_filter {
            match key.code {
                KeyCode::Enter => {
                    ui.view.filter = ui.editing_filter.take().unwrap_or_default();
                }
                KeyCode::Esc => {
                    ui.editing_filter = None;
                    ui.view.filter.clear();
                }
                KeyCode::Backspace => {
                    f.pop();
                }
                KeyCode::Char(c) => f.push(c),
                _ => {}
            }
            continue;
        }
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => return Ok(ui.problem),
            KeyCode::Char('s') => ui.view.sort = ui.view.sort.next(),
            KeyCode::Char('r') => ui.view.reverse = !ui.view.reverse,
            KeyCode::Char('/') => ui.editing_filter = Some(String::new()),
            KeyCode::Down | KeyCode::Char('j') => ui.table.select_next(),
            KeyCode::Up | KeyCode::Char('k') => ui.table.select_previous(),
            _ => {}
        }
    }
}

/// A bordered table titled `title` with a bold header: the region, pool
/// and arena panels below the cache table. `columns` pairs each header
/// with its width; each row has one cell per column.
fn panel(
    f: &mut Frame,
    area: ratatui::layout::Rect,
    title: &str,
    columns: &[(&str, Constraint)],
    rows: impl Iterator<Item = Vec<String>>,
) {
    let header = Row::new(columns.iter().map(|(name, _)| *name))
        .style(Style::new().add_modifier(Modifier::BOLD));
    f.render_widget(
        Table::new(rows.map(Row::new), columns.iter().map(|(_, width)| *width))
            .header(header)
            .block(Block::new().borders(Borders::ALL).title(title.to_string())),
        area,
    );
}

fn draw(f: &mut Frame, ui: &mut Ui, pid: u32) {
    let rows = ui.view.cache_rows();
    let regions = ui.view.regions();
    let pools = ui.view.pools();
    let arenas = ui.view.arenas();
    let [title, caches_area, regions_area, pools_area, arenas_area, spark_area, status] =
        Layout::vertical([
            Constraint::Length(1),
            Constraint::Min(6),
            Constraint::Length(regions.len().min(8) as u16 + 3),
            Constraint::Length(pools.len().min(4) as u16 + 3),
            // Hidden when the process has no arena.
            Constraint::Length(if arenas.is_empty() {
                0
            } else {
                arenas.len().min(3) as u16 + 3
            }),
            Constraint::Length(6),
            Constraint::Length(1),
        ])
        .areas(f.area());

    let order = if ui.view.reverse { "rev" } else { "" };
    f.render_widget(
        Paragraph::new(format!(
            "skmem-top  pid {pid}  refresh {}  sort: {} {order}  filter: {}",
            ui.view.generation,
            ui.view.sort.title(),
            if ui.view.filter.is_empty() {
                "-"
            } else {
                &ui.view.filter
            }
        )),
        title,
    );

    let header = Row::new(Column::ALL.iter().map(|c| {
        if *c == ui.view.sort {
            format!("{}*", c.title())
        } else {
            c.title().to_string()
        }
    }))
    .style(Style::new().add_modifier(Modifier::BOLD));
    let body = rows
        .iter()
        .map(|r| Row::new(Column::ALL.iter().map(|c| r.cell(*c))));
    let mut widths = vec![Constraint::Min(22)];
    widths.extend(std::iter::repeat(Constraint::Length(9)).take(Column::ALL.len() - 1));
    if let Some(sel) = ui.table.selected() {
        if sel >= rows.len() && !rows.is_empty() {
            ui.table.select(Some(rows.len() - 1));
        }
    }
    f.render_stateful_widget(
        Table::new(body, widths)
            .header(header)
            .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
            .block(Block::new().borders(Borders::ALL).title(" caches ")),
        caches_area,
        &mut ui.table,
    );

    panel(
        f,
        regions_area,
        " regions ",
        &[
            ("REGION", Constraint::Min(28)),
            ("SOURCE", Constraint::Length(8)),
            ("SEGS", Constraint::Length(12)),
            ("MEM_KIB", Constraint::Length(10)),
            ("TOTAL_KIB", Constraint::Length(10)),
            ("WIRED_KIB", Constraint::Length(10)),
        ],
        regions.iter().map(|r| {
            vec![
                r.name.clone(),
                r.source.to_string(),
                format!("{}/{}", r.seginuse, r.seg_cnt),
                (r.meminuse / 1024).to_string(),
                (r.memtotal / 1024).to_string(),
                (r.w_meminuse / 1024).to_string(),
            ]
        }),
    );
    panel(
        f,
        pools_area,
        " packet pools ",
        &[
            ("POOL", Constraint::Min(28)),
            ("SOURCE", Constraint::Length(8)),
            ("PACKETS", Constraint::Length(10)),
            ("PKTS_OUT", Constraint::Length(12)),
            ("BUFLETS_OUT", Constraint::Length(12)),
            ("MEM_KIB", Constraint::Length(10)),
        ],
        pools.iter().map(|p| {
            vec![
                p.name.clone(),
                p.source.clone(),
                p.md_capacity.to_string(),
                p.packets_out.to_string(),
                p.buflets_out.to_string(),
                (p.meminuse / 1024).to_string(),
            ]
        }),
    );
    panel(
        f,
        arenas_area,
        " arenas ",
        &[
            ("ARENA", Constraint::Min(28)),
            ("MEM_KIB", Constraint::Length(10)),
            ("TOTAL_KIB", Constraint::Length(10)),
            ("VIEW_KIB", Constraint::Length(10)),
            ("LOCAL", Constraint::Length(7)),
            ("REMOTE", Constraint::Length(7)),
            ("REDIRECTS", Constraint::Length(10)),
            ("STATE", Constraint::Length(8)),
        ],
        arenas.iter().map(|a| {
            vec![
                a.name.clone(),
                (a.mem_inuse / 1024).to_string(),
                (a.mem_total / 1024).to_string(),
                (a.map_size / 1024).to_string(),
                a.local_views.to_string(),
                a.remote_views.to_string(),
                a.redirects.to_string(),
                if a.defunct { "defunct" } else { "active" }.to_string(),
            ]
        }),
    );

    let selected = ui.table.selected().and_then(|i| rows.get(i));
    let (name, data) = selected.map_or(("-".to_string(), Vec::new()), |r| {
        (r.stats.name.clone(), r.history.clone())
    });
    let width = spark_area.width.saturating_sub(2) as usize;
    let data = &data[data.len().saturating_sub(width)..];
    f.render_widget(
        Sparkline::default()
            .data(data)
            .block(Block::new().borders(Borders::ALL).title(format!(
                " allocs/s of {name} (last {}) ",
                data.last().copied().unwrap_or(0)
            ))),
        spark_area,
    );

    let status_line = if let Some(p) = &ui.problem {
        Line::from(format!("{p} (last data shown; q quits)"))
            .style(Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED))
    } else if let Some(f) = &ui.editing_filter {
        Line::from(format!("filter: {f}_  (Enter applies, Esc clears)"))
    } else {
        Line::from("s sort  r reverse  / filter  up/down select  q quit")
    };
    f.render_widget(Paragraph::new(status_line), status);
}
