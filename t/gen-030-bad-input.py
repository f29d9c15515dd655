import json
hdr_form="Content-Type: application/x-www-form-urlencoded"
hdr_json="Content-Type: application/json"
def perl_str(s):
    out='"'
    for ch in s:
        o=ord(ch)
        if ch in '"\\$@': out+='\\'+ch
        elif ch=='\n': out+='\\n'
        elif o<0x20 or o>=0x7f: out+='\\x{%02x}'%o
        else: out+=ch
    return out+'"'
bad=[
 ("empty body","/c",hdr_form,"","empty body",0),
 ("a key without a value","/c",hdr_form,"b2:ok=1&=1","empty key",8),
 ("an empty value","/c",hdr_form,"b3:ok=1&b3:x=","empty value",13),
 ("an empty pair","/c",hdr_form,"b4:ok=1&&b4:y=2","empty pair",8),
 ("a trailing ampersand","/c",hdr_form,"b5:ok=1&","empty pair",8),
 ("a bad percent escape","/c",hdr_form,"b6:ok=1&b6%zz=1","invalid percent escape",10),
 ("a lone plus","/c",hdr_form,"b7:ok=1&+","missing '='",9),
 ("int64 max + 1","/c",hdr_form,"b8:ok=1&b8:big=9223372036854775808","integer out of range",33),
 ("int64 min - 1","/c",hdr_form,"b9:ok=1&b9:small=-9223372036854775809","integer out of range",36),
 ("a sum that overflows in one body","/c",hdr_form,"b10:ok=1&b10:s=9223372036854775807&b10:s=1","sum overflows",35),
 ("a key past the length limit","/short",hdr_form,"b11:ok=1&b11:123456789=1","key too long",17),
 ("invalid UTF-8","/c",hdr_form,"b12:ok=1&b12%ff=1","invalid UTF-8 in key",12),
 ("a control character","/c",hdr_form,"b13:ok=1&b13%0a=1","control character in key",12),
 ("a fraction","/c",hdr_form,"b14:ok=1&b14:f=1.5","invalid integer",16),
 ("JSON not an object","/c",hdr_json,"[1,2]","expected '{'",0),
 ("JSON string value","/c",hdr_json,'{"b16:ok":1,"b16:s":"2"}',"value is not an integer",20),
 ("JSON float","/c",hdr_json,'{"b17:ok":1,"b17:f":2.0}',"value is not an integer",21),
 ("JSON unterminated","/c",hdr_json,'{"b18:ok":1','unterminated object',11),
 ("JSON trailing garbage","/c",hdr_json,'{"b19:ok":1} x','trailing data after object',13),
 ("key_value without value","/kv",hdr_form,"key=b20:ok","missing field \"value\"",10),
 ("key_value with another field","/kv",hdr_form,"key=b21:ok&value=1&x=1","unknown field",19),
]
out=['''# Bad input: a 400 with {"error":...,"at":<byte>}, an INFO line, and
# nothing counted: each bad body holds a good pair before the bad one,
# and a sentinel request after it proves the flush has happened.

use lib 't/lib';
use Ingest::Test;
use Test::Nginx::Socket 'no_plan';

# the bad request's log line is checked after the sentinel that follows it
check_accum_error_log();

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value("http_config", <<'_EOC_') unless defined $block->http_config;
    ingest_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    ingest_flush_interval 10ms;
_EOC_

    $block->set_value("config", <<'_EOC_') unless defined $block->config;
    location = /c { ingest_counters; }
    location = /kv { ingest_counters form=key_value; }
    location = /short { ingest_counters; ingest_max_key_length 8; }
    location = /sentinel { ingest_counters; }
_EOC_
});

run_tests();

__DATA__
''']
n=0
for (name,loc,hdr,body,err,at) in bad:
    n+=1
    prefix="b%d:"%n
    assert (prefix+"ok" in body) or n in (1,15), (n, body)
    sentinel="sentinel:%d"%n
    errjson=json.dumps({"error":err,"at":at},separators=(',',':'))
    if hdr==hdr_json:
        sreq=perl_str("POST /sentinel\n"+json.dumps({sentinel:1}))
    else:
        sreq=perl_str("POST /sentinel\n"+sentinel+"=1")
    out.append('''
=== TEST %d: %s is refused and changes nothing
--- more_headers
%s
--- request eval
[%s,
 %s]
--- error_code eval
[400, 204]
--- response_body eval
[%s, ""]
--- totals eval
{ "%sok" => undef, "%s" => 1 }
--- error_log eval
[%s]
--- no_error_log
[error]
[alert]
''' % (n,name,hdr,perl_str("POST "+loc+"\n"+body),sreq,perl_str(errjson+"\n"),prefix,sentinel,
       perl_str("client sent invalid ingest body: "+err+" at byte "+str(at))))
n+=1
out.append('''
=== TEST %d: another content type is 415
--- more_headers
Content-Type: text/plain
--- request eval
"POST /c\\nb%d:x=1"
--- error_code: 415
--- response_body
{"error":"unsupported content type"}
--- no_error_log
[error]
''' % (n,n))
n+=1
out.append('''
=== TEST %d: key_value does not take JSON
--- more_headers
Content-Type: application/json
--- request eval
"POST /kv\\n{\\"b%d:x\\":1}"
--- error_code: 415
--- response_body
{"error":"unsupported content type"}
--- no_error_log
[error]
''' % (n,n))
n+=1
out.append('''
=== TEST %d: no content type is 415
--- request eval
"POST /c\\nb%d:x=1"
--- error_code: 415
--- response_body
{"error":"unsupported content type"}
--- no_error_log
[error]
''' % (n,n))
n+=1
out.append('''
=== TEST %d: a body over client_max_body_size is 413
--- config
    location = /c { ingest_counters; client_max_body_size 10; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
"POST /c\\nb%d:long=1&b%d:longer=2"
--- error_code: 413
--- error_log
client intended to send too large body
''' % (n,n,n))
n+=1
out.append('''
=== TEST %d: a sum that overflows the pending table refuses the request
--- http_config
    ingest_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    ingest_flush_interval 1s;
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /c\\nb%d:max=9223372036854775807&b%d:other=1",
 "POST /c\\nb%d:third=5&b%d:max=1",
 "POST /c\\nb%d:max=-7"]
--- error_code eval
[204, 400, 204]
--- response_body eval
["", "{\\"error\\":\\"sum overflows\\",\\"at\\":12}\\n", ""]
--- totals eval
{ "b%d:max" => 9223372036854775800, "b%d:other" => 1, "b%d:third" => undef }
--- no_error_log
[error]
''' % ((n,)+(n,)*8))
open('/work/main/t/030-bad-input.t','w').write(''.join(out))
