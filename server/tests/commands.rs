//! Every command through the `redis` crate, with Redis's replies and error texts.

use redis::{Commands, RedisResult, Value, cmd};

use crate::harness::{TestServer, code, sim_db};

fn err<T: std::fmt::Debug>(result: RedisResult<T>) -> redis::RedisError {
    result.expect_err("expected an error reply")
}

#[test]
fn string_commands_answer_like_redis() {
    let (_sim, db) = sim_db();
    let server = TestServer::start(db);
    let mut con = server.client();
    let c = &mut con;

    assert_eq!(c.get::<_, Option<String>>("missing").unwrap(), None);
    let () = c.set("k", "v").unwrap();
    assert_eq!(c.get::<_, String>("k").unwrap(), "v");
    // NX / XX / GET / KEEPTTL.
    let nx: Option<String> = cmd("SET").arg("k").arg("w").arg("NX").query(c).unwrap();
    assert_eq!(nx, None);
    let xx: Option<String> = cmd("SET").arg("new").arg("w").arg("XX").query(c).unwrap();
    assert_eq!(xx, None);
    assert!(!c.exists::<_, bool>("new").unwrap());
    let old: Option<String> = cmd("SET").arg("k").arg("v2").arg("GET").query(c).unwrap();
    assert_eq!(old.as_deref(), Some("v"));
    let ok: String = cmd("SET").arg("k").arg("v3").arg("XX").arg("KEEPTTL").query(c).unwrap();
    assert_eq!(ok, "OK");
    let syntax = err(cmd("SET").arg("k").arg("v").arg("NX").arg("XX").query::<Value>(c));
    assert!(syntax.to_string().contains("syntax error"), "{syntax}");
    for option in ["EX", "PX", "EXAT", "PXAT"] {
        let expiry = err(cmd("SET").arg("e").arg("v").arg(option).arg(10).query::<Value>(c));
        assert!(expiry.to_string().contains("expiry"), "{expiry}");
    }
    assert!(!c.exists::<_, bool>("e").unwrap(), "a refused expiry sets nothing");

    assert_eq!(cmd("SETNX").arg("k").arg("x").query::<i64>(c).unwrap(), 0);
    assert_eq!(cmd("SETNX").arg("n").arg("x").query::<i64>(c).unwrap(), 1);
    assert_eq!(c.getset::<_, _, String>("n", "y").unwrap(), "x");
    assert_eq!(cmd("GETDEL").arg("n").query::<String>(c).unwrap(), "y");
    assert_eq!(cmd("GETDEL").arg("n").query::<Option<String>>(c).unwrap(), None);

    let () = c.mset(&[("a", "1"), ("b", "2")]).unwrap();
    let got: Vec<Option<String>> = c.mget(&["a", "nope", "b"]).unwrap();
    assert_eq!(got, vec![Some("1".into()), None, Some("2".into())]);
    assert_eq!(cmd("MSETNX").arg("a").arg("9").arg("c").arg("3").query::<i64>(c).unwrap(), 0);
    assert!(!c.exists::<_, bool>("c").unwrap());
    assert_eq!(cmd("MSETNX").arg("c").arg("3").arg("d").arg("4").query::<i64>(c).unwrap(), 1);
    let odd = err(cmd("MSET").arg("a").arg("1").arg("b").query::<Value>(c));
    assert!(odd.to_string().contains("wrong number of arguments"), "{odd}");

    assert_eq!(c.exists::<_, i64>(&["a", "b", "zz", "a"]).unwrap(), 3);
    assert_eq!(c.del::<_, i64>(&["a", "zz"]).unwrap(), 1);
    assert_eq!(c.unlink::<_, i64>(&["b", "c", "d"]).unwrap(), 3);

    assert_eq!(c.append::<_, _, i64>("s", "Hello").unwrap(), 5);
    assert_eq!(c.append::<_, _, i64>("s", " World").unwrap(), 11);
    assert_eq!(c.strlen::<_, i64>("s").unwrap(), 11);
    assert_eq!(c.strlen::<_, i64>("nothing").unwrap(), 0);
    assert_eq!(c.getrange::<_, String>("s", 0, 4).unwrap(), "Hello");
    assert_eq!(c.getrange::<_, String>("s", -5, -1).unwrap(), "World");
    assert_eq!(c.setrange::<_, _, i64>("s", 6, "Redis").unwrap(), 11);
    assert_eq!(c.get::<_, String>("s").unwrap(), "Hello Redis");
    assert_eq!(c.setrange::<_, _, i64>("pad", 3, "x").unwrap(), 4);
    assert_eq!(c.get::<_, Vec<u8>>("pad").unwrap(), b"\0\0\0x");
    assert_eq!(c.setrange::<_, _, i64>("absent", 5, "").unwrap(), 0);
    assert!(!c.exists::<_, bool>("absent").unwrap());
    let negative = err(c.setrange::<_, _, i64>("s", -1, "x"));
    assert!(negative.to_string().contains("offset is out of range"), "{negative}");

    assert_eq!(c.incr::<_, _, i64>("n", 1).unwrap(), 1);
    assert_eq!(cmd("INCR").arg("n").query::<i64>(c).unwrap(), 2);
    assert_eq!(cmd("DECR").arg("n").query::<i64>(c).unwrap(), 1);
    assert_eq!(cmd("INCRBY").arg("n").arg(10).query::<i64>(c).unwrap(), 11);
    assert_eq!(cmd("DECRBY").arg("n").arg(20).query::<i64>(c).unwrap(), -9);
    let not_int = err(cmd("INCR").arg("s").query::<i64>(c));
    assert!(not_int.to_string().contains("value is not an integer or out of range"));
    let bad_arg = err(cmd("INCRBY").arg("n").arg("1.5").query::<i64>(c));
    assert!(bad_arg.to_string().contains("value is not an integer or out of range"));
    let () = c.set("max", i64::MAX).unwrap();
    let overflow = err(cmd("INCR").arg("max").query::<i64>(c));
    assert!(overflow.to_string().contains("increment or decrement would overflow"));
    assert_eq!(c.get::<_, i64>("max").unwrap(), i64::MAX, "a failed INCR writes nothing");
    let () = c.set("f", "10.5").unwrap();
    assert_eq!(cmd("INCRBYFLOAT").arg("f").arg("0.1").query::<String>(c).unwrap(), "10.6");
    assert_eq!(cmd("INCRBYFLOAT").arg("f").arg("-5").query::<String>(c).unwrap(), "5.6");
    let not_float = err(cmd("INCRBYFLOAT").arg("s").arg("1").query::<String>(c));
    assert!(not_float.to_string().contains("value is not a valid float"));
    let infinite = err(cmd("INCRBYFLOAT")
        .arg("f")
        .arg("1e308")
        .query::<String>(c)
        .and_then(|_| cmd("INCRBYFLOAT").arg("f").arg("1e308").query::<String>(c)));
    assert!(infinite.to_string().contains("NaN or Infinity"), "{infinite}");

    assert_eq!(cmd("TYPE").arg("s").query::<String>(c).unwrap(), "string");
    assert_eq!(cmd("TYPE").arg("nope").query::<String>(c).unwrap(), "none");

    let mut keys: Vec<String> = c.keys("*a*").unwrap();
    keys.sort();
    assert_eq!(keys, vec!["max", "pad"]);
    let count: i64 = cmd("DBSIZE").query(c).unwrap();
    assert_eq!(count, 6, "{:?}", c.keys::<_, Vec<String>>("*").unwrap());
    let random: Option<String> = cmd("RANDOMKEY").query(c).unwrap();
    assert!(random.is_some());
    assert_eq!(cmd("FLUSHDB").query::<String>(c).unwrap(), "OK");
    assert_eq!(cmd("DBSIZE").query::<i64>(c).unwrap(), 0);
    assert_eq!(cmd("RANDOMKEY").query::<Option<String>>(c).unwrap(), None);
    assert_eq!(cmd("FLUSHALL").arg("ASYNC").query::<String>(c).unwrap(), "OK");
}

#[test]
fn handshake_and_admin_commands_answer() {
    let (_sim, db) = sim_db();
    let server = TestServer::start(db);
    let mut con = server.client();
    let c = &mut con;
    assert_eq!(cmd("PING").query::<String>(c).unwrap(), "PONG");
    assert_eq!(cmd("PING").arg("hi").query::<String>(c).unwrap(), "hi");
    assert_eq!(cmd("ECHO").arg("x y").query::<String>(c).unwrap(), "x y");
    assert_eq!(cmd("SELECT").arg(0).query::<String>(c).unwrap(), "OK");
    assert!(err(cmd("SELECT").arg(1).query::<String>(c)).to_string().contains("out of range"));
    assert_eq!(cmd("CLIENT").arg("SETNAME").arg("tester").query::<String>(c).unwrap(), "OK");
    assert_eq!(cmd("CLIENT").arg("GETNAME").query::<String>(c).unwrap(), "tester");
    let id: i64 = cmd("CLIENT").arg("ID").query(c).unwrap();
    assert!(id > 0);
    let _: String = cmd("CLIENT").arg("SETINFO").arg("lib-name").arg("x").query(c).unwrap();
    let info: String = cmd("CLIENT").arg("INFO").query(c).unwrap();
    assert!(info.contains("name=tester") && info.contains("lib-name=x"), "{info}");
    assert!(
        err(cmd("CLIENT").arg("SETNAME").arg("a b").query::<String>(c))
            .to_string()
            .contains("spaces")
    );
    let count: i64 = cmd("COMMAND").arg("COUNT").query(c).unwrap();
    let all: Vec<Value> = cmd("COMMAND").query(c).unwrap();
    assert_eq!(all.len() as i64, count);
    type Docs = std::collections::HashMap<String, std::collections::HashMap<String, String>>;
    let docs: Docs = cmd("COMMAND").arg("DOCS").query(c).unwrap();
    assert_eq!(docs.len() as i64, count);
    assert_eq!((docs["get"]["group"].as_str(), docs["get"]["since"].as_str()), ("string", "1.0.0"));
    assert!(docs.values().all(|d| !d["summary"].is_empty() && d.len() == 3), "{docs:?}");
    let named: Docs = cmd("COMMAND").arg("DOCS").arg("SET").arg("nosuch").query(c).unwrap();
    assert_eq!(named.keys().collect::<Vec<_>>(), ["set"]);
    assert_eq!(named["set"]["group"], "string");
    let info: String = cmd("INFO").query(c).unwrap();
    for section in ["# Server", "# Clients", "# Persistence", "# Keyspace", "appendfsync:always"] {
        assert!(info.contains(section), "{section} missing from {info}");
    }
    let only: String = cmd("INFO").arg("persistence").query(c).unwrap();
    assert!(only.contains("mcstore_durability:immediate") && !only.contains("# Server"));
    let config: Vec<String> = cmd("CONFIG").arg("GET").arg("appendfsync").query(c).unwrap();
    assert_eq!(config, vec!["appendfsync", "always"]);
    let several: Vec<String> =
        cmd("CONFIG").arg("GET").arg("save").arg("databases").arg("appendonly").query(c).unwrap();
    assert_eq!(several, vec!["appendonly", "yes", "save", "", "databases", "1"]);
    assert!(
        err(cmd("CONFIG").arg("SET").arg("save").arg("").query::<String>(c))
            .to_string()
            .contains("not supported")
    );
    let time: Vec<String> = cmd("TIME").query(c).unwrap();
    assert!(time[0].parse::<u64>().unwrap() > 1_700_000_000);
    let wait: Vec<i64> = cmd("WAITAOF").arg(1).arg(0).arg(0).query(c).unwrap();
    assert_eq!(wait, vec![1, 0]);
    let unknown = err(cmd("NOSUCH").arg("a").query::<String>(c));
    assert!(
        unknown.to_string().contains("unknown command 'NOSUCH', with args beginning with: 'a'"),
        "{unknown}"
    );
    let arity = err(cmd("GET").query::<String>(c));
    assert!(arity.to_string().contains("wrong number of arguments for 'get' command"), "{arity}");
    assert_eq!(cmd("RESET").query::<String>(c).unwrap(), "RESET");
    assert_eq!(cmd("CLIENT").arg("GETNAME").query::<Option<String>>(c).unwrap(), None);
    assert_eq!(cmd("QUIT").query::<String>(c).unwrap(), "OK");
}

#[test]
fn a_password_gates_every_command_until_auth() {
    let (_sim, db) = sim_db();
    let config =
        mcstore_server::ServerConfig { requirepass: Some("sesame".into()), ..Default::default() };
    let server = TestServer::start_with(db, config);
    let mut con = server.client();
    assert_eq!(code(&err(con.get::<_, Option<String>>("k"))), "NOAUTH");
    assert_eq!(code(&err(cmd("AUTH").arg("wrong").query::<String>(&mut con))), "WRONGPASS");
    assert_eq!(code(&err(cmd("HELLO").arg(3).query::<Value>(&mut con))), "NOAUTH");
    assert_eq!(cmd("AUTH").arg("sesame").query::<String>(&mut con).unwrap(), "OK");
    let () = con.set("k", "v").unwrap();
    assert_eq!(cmd("RESET").query::<String>(&mut con).unwrap(), "RESET");
    assert_eq!(code(&err(con.get::<_, Option<String>>("k"))), "NOAUTH");
    // A client library authenticating from its URL.
    let url = format!("redis://:sesame@{}/", server.addr);
    let mut authed = redis::Client::open(url).unwrap().get_connection().unwrap();
    assert_eq!(authed.get::<_, String>("k").unwrap(), "v");
    let hello: Value =
        cmd("HELLO").arg(2).arg("AUTH").arg("default").arg("sesame").query(&mut con).unwrap();
    assert!(matches!(hello, Value::Array(_) | Value::Map(_)), "{hello:?}");
    assert_eq!(con.get::<_, String>("k").unwrap(), "v");
}

#[test]
fn the_client_limit_turns_away_the_extra_client() {
    let (_sim, db) = sim_db();
    let config = mcstore_server::ServerConfig { max_clients: 1, ..Default::default() };
    let server = TestServer::start_with(db, config);
    let mut first = server.client();
    assert_eq!(cmd("PING").query::<String>(&mut first).unwrap(), "PONG");
    let mut second = server.raw();
    let refused = crate::harness::read_to_close(&mut second);
    assert_eq!(refused, b"-ERR max number of clients reached\r\n");
    assert_eq!(cmd("PING").query::<String>(&mut first).unwrap(), "PONG");
}
