/* fuzz_keys: the key fixture of the jwt targets, written by
   tests/fuzz/make_seeds.py with the seeds of corpus/jwt/ (their
   signatures are made with the private halves, which were not kept). */
#ifndef TESTS_FUZZ_KEYS_H
#define TESTS_FUZZ_KEYS_H

#define FUZZ_JWKS                                                                                            \
    "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"fuzz-rsa\",\"use\":\"sig\",\"alg\":\"RS256\",\"n\":\"x9pfVEVp-"   \
    "CA-"                                                                                                    \
    "F75wCoc2sVg6XSPzRNkq8Q7lnHdT46dRaK0ARE2b0X0emBKMKTUuRSddRFGjfJZqfHyHVAaPWxHYEqTwAiYWRnkYzKcHxIJztWZhDT" \
    "J4Eh6xjUAoRIC9yNo7mYbWOvYaHTqXxM-taq2rGuFLVhdCYf7KWjekYi747JALDXIpF1_EUsqXtNExOvHzL5eI_Ks5p_"           \
    "j9XcDdHyB8dEsdDYZYCoaGnwB0FDbtXg45rmxatXK9Xl9zgZjMi2Dic_RGMevWtqFvv8iaaPBEOAhZR9ovy5sGbQEZWSjCHSqGyGV-" \
    "-ZQas9epmkVEiWQNsB0mxUqg8vMfoE6NdQ\",\"e\":\"AQAB\"},{\"kty\":\"EC\",\"kid\":\"fuzz-ec\",\"alg\":"      \
    "\"ES256\",\"crv\":\"P-256\",\"x\":\"w-hGul90JqKDffbHn6MO2LPypF6J0Aw1BFvTv9TTc-8\",\"y\":"               \
    "\"SITBa5jpLnzF6XxTSFyEa_ieEDdNhmMbwn36HCx5yiQ\"}]}"
#define FUZZ_HS256_SECRET "fuzz-hs256-secret-0123456789abcdef"
#define FUZZ_ISSUER       "https://issuer.example"
#define FUZZ_AUDIENCE     "api"
#define FUZZ_NOW          1800000000
#define FUZZ_LEEWAY       60

#endif
