//! The wire: RESP3 after HELLO 3, inline commands, pipelining, and hostile input (the client
//! gets an error and is disconnected; the server keeps serving).

use redis::{Commands, Value, cmd};

use crate::harness::{TestServer, exchange, exchange_until, read_to_close, sim_db};

#[test]
fn hello_3_switches_to_resp3_replies() {
    let (_sim, db) = sim_db();
    let server = TestServer::start(db);
    let mut raw = server.raw();
    let hello = exchange_until(&mut raw, b"HELLO 3\r\n", b"$7\r\nmodules\r\n*0\r\n");
    assert!(
        hello.starts_with(b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n"),
        "{}",
        hello.escape_ascii()
    );
    assert!(hello.windows(11).any(|w| w == b"proto\r\n:3\r\n"), "{}", hello.escape_ascii());
    assert_eq!(exchange(&mut raw, b"GET missing\r\n", 3), b"_\r\n");
    let config = exchange(&mut raw, b"CONFIG GET appendonly\r\n", 30);
    assert_eq!(config, b"%1\r\n$10\r\nappendonly\r\n$3\r\nyes\r\n");
    let info = exchange(&mut raw, b"CLIENT INFO\r\n", 1);
    assert_eq!(info[0], b'=', "{}", info.escape_ascii());
    // Back to RESP2.
    let hello = exchange_until(&mut raw, b"HELLO 2\r\n", b"$7\r\nmodules\r\n*0\r\n");
    assert!(hello.starts_with(b"*14\r\n"), "{}", hello.escape_ascii());
    assert_eq!(exchange(&mut raw, b"GET missing\r\n", 5), b"$-1\r\n");
    assert_eq!(
        exchange(&mut raw, b"HELLO 4\r\n", 10),
        b"-NOPROTO unsupported protocol version\r\n"
    );

    // A client library speaking RESP3.
    let url = format!("redis://{}/?protocol=resp3", server.addr);
    let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
    let () = con.set("k", "v").unwrap();
    assert_eq!(con.get::<_, String>("k").unwrap(), "v");
    assert_eq!(con.get::<_, Option<String>>("none").unwrap(), None);
    let config: Value = cmd("CONFIG").arg("GET").arg("appendfsync").query(&mut con).unwrap();
    assert!(matches!(config, Value::Map(ref pairs) if pairs.len() == 1), "{config:?}");
}

#[test]
fn inline_commands_and_pipelines_reply_in_order() {
    let (_sim, db) = sim_db();
    let server = TestServer::start(db);
    let mut raw = server.raw();
    assert_eq!(exchange(&mut raw, b"PING\r\n", 7), b"+PONG\r\n");
    assert_eq!(exchange(&mut raw, b"SET greeting \"hello world\"\n", 5), b"+OK\r\n");
    assert_eq!(exchange(&mut raw, b"GET greeting\r\n", 17), b"$11\r\nhello world\r\n");
    // 3000 commands in one write (several batches on the server), replies in order.
    let mut request = Vec::new();
    let mut expected = Vec::new();
    for i in 0..1500 {
        request.extend_from_slice(
            format!("*3\r\n$3\r\nSET\r\n$5\r\nk{i:04}\r\n$1\r\n{}\r\n", i % 10).as_bytes(),
        );
        request.extend_from_slice(format!("INCR k{i:04}\r\n").as_bytes());
        expected.extend_from_slice(b"+OK\r\n");
        expected.extend_from_slice(format!(":{}\r\n", i % 10 + 1).as_bytes());
    }
    let got = exchange(&mut raw, &request, expected.len());
    assert!(
        got == expected,
        "pipelined replies differ ({} vs {} bytes)",
        got.len(),
        expected.len()
    );

    let mut con = server.client();
    let mut pipe = redis::pipe();
    for i in 0..200 {
        pipe.set(format!("p{i}"), i).ignore().get(format!("p{i}"));
    }
    let got: Vec<i64> = pipe.query(&mut con).unwrap();
    assert_eq!(got, (0..200).collect::<Vec<i64>>());
}

/// Each hostile request gets `-ERR Protocol error: …` and the connection is closed; the server
/// keeps serving other clients.
#[test]
fn hostile_input_closes_only_that_connection() {
    let (_sim, db) = sim_db();
    let config = mcstore_server::ServerConfig { max_request_bytes: 1 << 20, ..Default::default() };
    let server = TestServer::start_with(db, config);
    let mut keeper = server.client();
    let () = keeper.set("alive", "yes").unwrap();
    let hostile: Vec<Vec<u8>> = vec![
        b"*1\r\n$99999999999999\r\n".to_vec(),
        b"*1\r\n$-7\r\n".to_vec(),
        b"*999999999999\r\n".to_vec(),
        b"*2\r\n*1\r\n$1\r\na\r\n".to_vec(),
        b"*1\r\n$3\r\nGETXX\r\n".to_vec(),
        b"*1\r\nGET\r\n".to_vec(),
        b"GET \"unterminated\r\n".to_vec(),
        vec![b'x'; 70 << 10],
        b"*1\r\n$2000000\r\n".to_vec(),
        {
            // Arguments that sum beyond the request limit.
            let mut big = b"*3\r\n".to_vec();
            for _ in 0..3 {
                big.extend_from_slice(format!("${}\r\n", 400_000).as_bytes());
                big.extend_from_slice(&vec![b'v'; 400_000]);
                big.extend_from_slice(b"\r\n");
            }
            big
        },
    ];
    for request in hostile {
        let mut raw = server.raw();
        std::io::Write::write_all(&mut raw, &request).unwrap_or(());
        let reply = read_to_close(&mut raw);
        assert!(
            reply.starts_with(b"-ERR Protocol error"),
            "{} -> {}",
            request[..request.len().min(40)].escape_ascii(),
            reply.escape_ascii()
        );
        assert_eq!(keeper.get::<_, String>("alive").unwrap(), "yes");
    }
    // A truncated frame, then the client hangs up: the server just drops the connection.
    let mut raw = server.raw();
    std::io::Write::write_all(&mut raw, b"*2\r\n$3\r\nSET\r\n$5\r\nab").unwrap();
    raw.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_to_close(&mut raw), b"");
    // Garbage bytes that happen to form an inline command are an unknown command, not a crash.
    let mut raw = server.raw();
    let reply = exchange(&mut raw, b"\x00\x01\xff garbage\r\n", 10);
    assert!(reply.starts_with(b"-ERR unknown command"), "{}", reply.escape_ascii());
    assert_eq!(keeper.get::<_, String>("alive").unwrap(), "yes");
    let big_value = vec![b'z'; 200 << 10];
    let () = keeper.set("big", &big_value).unwrap();
    assert_eq!(keeper.get::<_, Vec<u8>>("big").unwrap(), big_value);
}

/// With reads offloaded too (`--offload-reads`) and tokio's `spawn_blocking` instead of the
/// worker pool (`--workers 0`), replies are the same.
#[test]
fn offloaded_reads_answer_the_same() {
    let (_sim, db) = sim_db();
    let config = mcstore_server::ServerConfig {
        inline_reads: false,
        blocking_workers: None,
        ..Default::default()
    };
    let server = TestServer::start_with(db, config);
    let mut raw = server.raw();
    let request = b"SET a 1\r\nGET a\r\nEXISTS a b\r\nSTRLEN a\r\nPING\r\nMGET a b\r\n";
    let want = b"+OK\r\n$1\r\n1\r\n:1\r\n:1\r\n+PONG\r\n*2\r\n$1\r\n1\r\n$-1\r\n";
    assert_eq!(exchange(&mut raw, request, want.len()), want);
}

/// A connection idle past `idle_timeout` is closed; others are unaffected.
#[test]
fn idle_connections_are_closed() {
    let (_sim, db) = sim_db();
    let config = mcstore_server::ServerConfig {
        idle_timeout: Some(std::time::Duration::from_millis(100)),
        ..Default::default()
    };
    let server = TestServer::start_with(db, config);
    let mut raw = server.raw();
    assert_eq!(exchange(&mut raw, b"PING\r\n", 7), b"+PONG\r\n");
    assert_eq!(read_to_close(&mut raw), b"", "closed without a reply");
    let mut fresh = server.raw();
    assert_eq!(exchange(&mut fresh, b"PING\r\n", 7), b"+PONG\r\n");
}

/// With a fixed worker pool instead of `spawn_blocking`, replies are the same, writes included.
#[test]
fn a_worker_pool_runs_the_same_commands() {
    let (_sim, db) = sim_db();
    let config = mcstore_server::ServerConfig {
        inline_reads: false,
        blocking_workers: Some(2),
        ..Default::default()
    };
    let server = TestServer::start_with(db, config);
    let mut raw = server.raw();
    let request = b"SET a 1\r\nINCR a\r\nMULTI\r\nINCR a\r\nGET a\r\nEXEC\r\nMGET a b\r\n";
    let want = b"+OK\r\n:2\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:3\r\n$1\r\n3\r\n*2\r\n$1\r\n3\r\n$-1\r\n";
    assert_eq!(exchange(&mut raw, request, want.len()), want);
    drop(raw);
    server.stop().expect("the store closes with the worker pool running");
}
