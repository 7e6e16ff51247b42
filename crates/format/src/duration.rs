//! docker's human-readable times (github.com/docker/go-units HumanDuration) and the
//! `docker ps` STATUS column built from them.

use std::time::Duration;

/// go-units HumanDuration, thresholds as in its source and tests: whole seconds and minutes
/// truncate, hours round to nearest, and days/weeks/months/years derive from rounded hours.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "float to integer casts saturate (NaN and negatives to 0), which is what a duration wants"
)]
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    let minutes = seconds / 60;
    let hours_f = d.as_secs_f64() / 3600.0;
    let hours = (hours_f + 0.5) as u64;
    match () {
        _ if seconds < 1 => "Less than a second".into(),
        _ if seconds == 1 => "1 second".into(),
        _ if seconds < 60 => format!("{seconds} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours_f as u64 / 24 / 365),
    }
}

/// The daemon's container State.String(), which `docker ps` shows as STATUS.
/// `since` is the time since start (running, paused) or since finish (exited, restarting).
pub fn container_status(state: &str, exit_code: i64, since: Duration) -> String {
    let ago = human_duration(since);
    match state {
        "created" => "Created".into(),
        "running" => format!("Up {ago}"),
        "paused" => format!("Up {ago} (Paused)"),
        "restarting" => format!("Restarting ({exit_code}) {ago} ago"),
        "exited" => format!("Exited ({exit_code}) {ago} ago"),
        "dead" => "Dead".into(),
        "removing" => "Removal In Progress".into(),
        other => other.into(),
    }
}

/// `500ms`, `2s`, `1m` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len()));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (like 500ms, 2s, 1m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    if !(0.0..=86400.0 * 365.0).contains(&secs) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60;
    const HOUR: u64 = 60 * MIN;
    const DAY: u64 = 24 * HOUR;
    const WEEK: u64 = 7 * DAY;
    const MONTH: u64 = 30 * DAY;
    const YEAR: u64 = 365 * DAY;

    fn hd(secs: u64) -> String {
        human_duration(Duration::from_secs(secs))
    }

    /// The table from go-units' duration_test.go.
    #[test]
    fn matches_go_units() {
        assert_eq!(
            human_duration(Duration::from_millis(450)),
            "Less than a second"
        );
        let cases = [
            (1, "1 second"),
            (45, "45 seconds"),
            (46, "46 seconds"),
            (59, "59 seconds"),
            (60, "About a minute"),
            (3 * MIN, "3 minutes"),
            (35 * MIN, "35 minutes"),
            (35 * MIN + 40, "35 minutes"),
            (45 * MIN, "45 minutes"),
            (45 * MIN + 40, "45 minutes"),
            (46 * MIN, "46 minutes"),
            (59 * MIN, "59 minutes"),
            (HOUR, "About an hour"),
            (HOUR + 29 * MIN, "About an hour"),
            (HOUR + 31 * MIN, "2 hours"),
            (HOUR + 59 * MIN, "2 hours"),
            (3 * HOUR, "3 hours"),
            (3 * HOUR + 29 * MIN, "3 hours"),
            (3 * HOUR + 31 * MIN, "4 hours"),
            (3 * HOUR + 60 * MIN, "4 hours"),
            (DAY, "24 hours"),
            (DAY + 12 * HOUR, "36 hours"),
            (2 * DAY, "2 days"),
            (7 * DAY, "7 days"),
            (13 * DAY + 5 * HOUR, "13 days"),
            (2 * WEEK, "2 weeks"),
            (2 * WEEK + 4 * DAY, "2 weeks"),
            (3 * WEEK, "3 weeks"),
            (4 * WEEK, "4 weeks"),
            (4 * WEEK + 3 * DAY, "4 weeks"),
            (MONTH, "4 weeks"),
            (MONTH + 2 * WEEK, "6 weeks"),
            (2 * MONTH, "2 months"),
            (2 * MONTH + 2 * WEEK, "2 months"),
            (3 * MONTH, "3 months"),
            (3 * MONTH + WEEK, "3 months"),
            (5 * MONTH + 2 * WEEK, "5 months"),
            (13 * MONTH, "13 months"),
            (23 * MONTH, "23 months"),
            (24 * MONTH, "24 months"),
            (24 * MONTH + 2 * WEEK, "2 years"),
            (3 * YEAR + 2 * MONTH, "3 years"),
        ];
        for (secs, want) in cases {
            assert_eq!(hd(secs), want, "{secs}s");
        }
    }

    #[test]
    fn status_strings() {
        let s = |state, code, secs| container_status(state, code, Duration::from_secs(secs));
        assert_eq!(s("created", 0, 0), "Created");
        assert_eq!(s("running", 0, 5), "Up 5 seconds");
        assert_eq!(s("running", 0, 0), "Up Less than a second");
        assert_eq!(s("running", 0, 90), "Up About a minute");
        assert_eq!(s("paused", 0, 2 * HOUR), "Up 2 hours (Paused)");
        assert_eq!(s("exited", 0, 3 * MIN), "Exited (0) 3 minutes ago");
        assert_eq!(s("exited", 137, 1), "Exited (137) 1 second ago");
        assert_eq!(s("restarting", 1, 2), "Restarting (1) 2 seconds ago");
        assert_eq!(s("dead", 0, 0), "Dead");
        assert_eq!(s("removing", 0, 0), "Removal In Progress");
    }

    #[test]
    fn durations_as_the_flags_take_them() {
        use std::time::Duration;
        assert_eq!(
            super::parse_duration("500ms"),
            Ok(Duration::from_millis(500))
        );
        assert_eq!(super::parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(super::parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        super::parse_duration("2d").unwrap_err();
        super::parse_duration("-1s").unwrap_err();
    }
}
