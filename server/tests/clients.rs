//! CLIENT LIST and CLIENT KILL over several live connections.

use std::io::Read;

use redis::cmd;

use crate::harness::{TestServer, code, sim_db};

/// The ids CLIENT LIST shows, in order.
fn listed_ids(list: &str) -> Vec<i64> {
    list.lines()
        .filter_map(|line| line.strip_prefix("id=")?.split(' ').next()?.parse().ok())
        .collect()
}

/// The `field=` value of the line of client `id` in `list`.
fn field(list: &str, id: i64, name: &str) -> Option<String> {
    let line = list.lines().find(|line| line.starts_with(&format!("id={id} ")))?;
    let prefix = format!("{name}=");
    line.split(' ').find_map(|kv| kv.strip_prefix(prefix.as_str()).map(str::to_string))
}

fn id_of(c: &mut redis::Connection) -> i64 {
    cmd("CLIENT").arg("ID").query(c).unwrap()
}

/// Poll CLIENT LIST until `done` holds (a closed connection leaves the list when its task ends,
/// a moment after the close); the last listing.
fn list_until(c: &mut redis::Connection, done: impl Fn(&str) -> bool) -> String {
    for _ in 0..500 {
        let list: String = cmd("CLIENT").arg("LIST").query(c).unwrap();
        if done(&list) {
            return list;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("CLIENT LIST never reached the expected state");
}

#[test]
fn client_list_shows_every_connection_and_kill_closes_them() {
    let (_sim, db) = sim_db();
    let server = TestServer::start(db);
    let mut me = server.client();
    let mut other = server.client();
    let mut third = server.client();
    let (me_id, other_id, third_id) = (id_of(&mut me), id_of(&mut other), id_of(&mut third));
    let _: String = cmd("CLIENT").arg("SETNAME").arg("worker").query(&mut other).unwrap();
    let _: String = cmd("SET").arg("k").arg("v").query(&mut other).unwrap();
    let _: String = cmd("MULTI").query(&mut third).unwrap();
    let _: String = cmd("GET").arg("k").query(&mut third).unwrap();

    let list: String = cmd("CLIENT").arg("LIST").query(&mut me).unwrap();
    assert_eq!(listed_ids(&list), vec![me_id, other_id, third_id], "{list}");
    assert_eq!(field(&list, other_id, "name").as_deref(), Some("worker"));
    assert_eq!(field(&list, other_id, "cmd").as_deref(), Some("set"));
    assert_eq!(field(&list, third_id, "multi").as_deref(), Some("1"));
    assert_eq!(field(&list, me_id, "cmd").as_deref(), Some("client|list"));
    assert_eq!(field(&list, me_id, "multi").as_deref(), Some("-1"));
    // The published view is updated in place after each batch: a new name, a new last
    // command and the end of a MULTI all show.
    let _: String = cmd("CLIENT").arg("SETNAME").arg("renamed").query(&mut other).unwrap();
    let _: Option<String> = cmd("GET").arg("k").query(&mut other).unwrap();
    let _: redis::Value = cmd("EXEC").query(&mut third).unwrap();
    let list: String = cmd("CLIENT").arg("LIST").query(&mut me).unwrap();
    assert_eq!(field(&list, other_id, "name").as_deref(), Some("renamed"), "{list}");
    assert_eq!(field(&list, other_id, "cmd").as_deref(), Some("get"), "{list}");
    assert_eq!(field(&list, third_id, "multi").as_deref(), Some("-1"), "{list}");
    assert_eq!(field(&list, third_id, "cmd").as_deref(), Some("exec"), "{list}");
    let only: String = cmd("CLIENT").arg("LIST").arg("ID").arg(other_id).query(&mut me).unwrap();
    assert_eq!(listed_ids(&only), vec![other_id]);
    let pubsub: String =
        cmd("CLIENT").arg("LIST").arg("TYPE").arg("pubsub").query(&mut me).unwrap();
    assert!(pubsub.is_empty());
    assert_eq!(
        code(&cmd("CLIENT").arg("LIST").arg("ID").arg("x").query::<String>(&mut me).unwrap_err()),
        "ERR"
    );

    // The new form: a count; the caller is skipped unless SKIPME no.
    let killed: i64 = cmd("CLIENT").arg("KILL").arg("ID").arg(other_id).query(&mut me).unwrap();
    assert_eq!(killed, 1);
    assert!(cmd("PING").query::<String>(&mut other).is_err(), "a killed client is closed");
    let killed: i64 = cmd("CLIENT").arg("KILL").arg("ID").arg(me_id).query(&mut me).unwrap();
    assert_eq!(killed, 0, "SKIPME yes is the default");
    let killed: i64 = cmd("CLIENT").arg("KILL").arg("USER").arg("nobody").query(&mut me).unwrap();
    assert_eq!(killed, 0);
    let list = list_until(&mut me, |list| !listed_ids(list).contains(&other_id));
    assert_eq!(listed_ids(&list), vec![me_id, third_id]);

    // The old form: OK, or an error when no client has that address.
    let addr = field(&list, third_id, "addr").unwrap();
    let ok: String = cmd("CLIENT").arg("KILL").arg(&addr).query(&mut me).unwrap();
    assert_eq!(ok, "OK");
    assert_eq!(
        code(&cmd("CLIENT").arg("KILL").arg("10.9.9.9:1").query::<String>(&mut me).unwrap_err()),
        "ERR"
    );
    list_until(&mut me, |list| listed_ids(list) == vec![me_id]);

    // Killing itself (SKIPME no): the reply arrives, then the connection closes.
    let mut raw = server.raw();
    raw.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    std::io::Write::write_all(&mut raw, b"CLIENT KILL SKIPME no\r\n").unwrap();
    let mut got = Vec::new();
    raw.read_to_end(&mut got).unwrap();
    assert_eq!(got, b":2\r\n", "it killed `me` and itself, then closed");
    assert!(cmd("PING").query::<String>(&mut me).is_err());
}
