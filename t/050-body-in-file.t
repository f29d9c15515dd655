# Bodies that nginx keeps in several buffers or writes to a temp file.

use lib 't/lib';
use Ingest::Test;
use Test::Nginx::Socket 'no_plan';

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value("http_config", <<'_EOC_');
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 10ms;
_EOC_

    $block->set_value("no_error_log", "[error]\n[alert]\n");
});

run_tests();

__DATA__

=== TEST 1: a form body spilled to a temp file (client_body_buffer_size 1k)
--- config
    location = /c { ingest_counters; client_body_buffer_size 1k; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
"POST /c\n" . CORE::join("&", map { "file1:key%3A$_=" . ($_ % 7 - 3) } 1 .. 2000)
--- error_code: 204
--- totals eval
+{ map { ("file1:key:$_" => $_ % 7 - 3) } grep { $_ % 7 != 3 } 1 .. 2000 }
--- error_log
a client request body is buffered to a temporary file



=== TEST 2: a JSON body in a temp file, refused at its very end
--- config
    location = /c { ingest_counters; client_body_buffer_size 1k; }
--- more_headers
Content-Type: application/json
--- request eval
["POST /c\n{" . CORE::join(",", map { "\"file2:k$_\":1" } 1 .. 1000) . ",\"file2:bad\":1.5}",
 "POST /c\n{\"file2:sentinel\":1}"]
--- error_code eval
[400, 204]
--- response_body eval
my $body = "{" . CORE::join(",", map { "\"file2:k$_\":1" } 1 .. 1000)
           . ",\"file2:bad\":1.5}";
["{\"error\":\"value is not an integer\",\"at\":" . (index($body, "1.5") + 1)
 . "}\n", ""]
--- totals eval
{ "file2:k1" => undef, "file2:k1000" => undef, "file2:sentinel" => 1 }



=== TEST 3: client_body_in_file_only
--- config
    location = /c { ingest_counters; client_body_in_file_only clean; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
"POST /c\nfile3:a=1&file3:b=2"
--- error_code: 204
--- totals eval
{ "file3:a" => 1, "file3:b" => 2 }



=== TEST 4: a body split over many reads (a small buffer, in memory)
--- config
    location = /c { ingest_counters; client_body_buffer_size 16k; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
"POST /c\n" . CORE::join("&", map { "file4:%E2%82%AC$_=$_" } 1 .. 300)
--- error_code: 204
--- totals eval
+{ map { ("file4:\x{e2}\x{82}\x{ac}$_" => $_) } 1 .. 300 }
