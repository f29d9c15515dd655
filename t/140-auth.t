# Access control is nginx's own: a request that auth_basic, allow/deny or
# auth_request refuses never reaches the pending table.

use lib 't/lib';
use Ingest::Test;
use Test::Nginx::Socket 'no_plan';

BEGIN {
    open my $out, '>', "$Ingest::Test::Dir/htpasswd" or die $!;
    print $out "ingest:{PLAIN}s3cret\n";
    close $out;
}

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value("http_config", <<'_EOC_');
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 10ms;
_EOC_

    $block->set_value("config", <<'_EOC_');
    location = /basic {
        auth_basic "ingest";
        auth_basic_user_file $TEST_NGINX_INGEST_DIR/htpasswd;
        ingest_counters;
    }

    location = /denied {
        deny all;
        ingest_counters;
    }

    location = /ask {
        auth_request /_auth;
        ingest_counters;
    }

    location = /_auth {
        internal;
        if ($http_x_token = "good") {
            return 204;
        }
        return 403;
    }

    location = /open { ingest_counters; }
_EOC_
});

run_tests();

__DATA__

=== TEST 1: auth_basic: without and with wrong credentials, nothing counted
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /basic\nauth1:no=1", "POST /open\nauth1:sentinel=1"]
--- error_code eval
[401, 204]
--- totals eval
{ "auth1:no" => undef, "auth1:sentinel" => 1 }



=== TEST 2: auth_basic with the right credentials
--- more_headers
Content-Type: application/x-www-form-urlencoded
Authorization: Basic aW5nZXN0OnMzY3JldA==
--- request eval
"POST /basic\nauth2:yes=1"
--- error_code: 204
--- totals eval
{ "auth2:yes" => 1 }



=== TEST 3: a wrong password
--- more_headers
Content-Type: application/x-www-form-urlencoded
Authorization: Basic aW5nZXN0Ondyb25n
--- request eval
["POST /basic\nauth3:no=1", "POST /open\nauth3:sentinel=1"]
--- error_code eval
[401, 204]
--- totals eval
{ "auth3:no" => undef, "auth3:sentinel" => 1 }



=== TEST 4: deny all
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /denied\nauth4:no=1", "POST /open\nauth4:sentinel=1"]
--- error_code eval
[403, 204]
--- totals eval
{ "auth4:no" => undef, "auth4:sentinel" => 1 }



=== TEST 5: auth_request refuses, then lets in
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /ask\nauth5:no=1", "POST /open\nauth5:sentinel=1"]
--- error_code eval
[403, 204]
--- totals eval
{ "auth5:no" => undef, "auth5:sentinel" => 1 }



=== TEST 6: auth_request with a good token
--- more_headers
Content-Type: application/x-www-form-urlencoded
X-Token: good
--- request eval
"POST /ask\nauth6:yes=1"
--- error_code: 204
--- totals eval
{ "auth6:yes" => 1 }
