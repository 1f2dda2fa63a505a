"""The platform's own certificates: mutual TLS material and TF Serving's inline SSL config."""

from cryptography import x509

from dfp import pki


def test_the_services_certificate_is_signed_by_the_ca_for_every_name_and_both_directions(tmp_path):
    paths = pki.create_mtls(tmp_path, ["dfp-detector", "127.0.0.1"])
    ca = x509.load_pem_x509_certificate(paths["ca"].read_bytes())
    leaf = x509.load_pem_x509_certificate(paths["certificate"].read_bytes())
    leaf.verify_directly_issued_by(ca)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["dfp-detector"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {u.dotted_string for u in usages} == {"1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"}  # server and client
    assert paths["key"].stat().st_mode & 0o077 == 0


def ssl_config_type():
    """TF Serving's tensorflow.serving.SSLConfig (tensorflow_serving/config/ssl_config.proto), built
    here: the serving-api wheel does not ship it."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    proto = descriptor_pb2.FileDescriptorProto(name="dfp_test/ssl_config.proto", package="tensorflow.serving.test",
                                               syntax="proto3")
    message = proto.message_type.add(name="SSLConfig")
    for number, (name, kind) in enumerate((("server_key", "TYPE_STRING"), ("server_cert", "TYPE_STRING"),
                                           ("custom_ca", "TYPE_STRING"), ("client_verify", "TYPE_BOOL")), 1):
        message.field.add(name=name, number=number, label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
                          type=getattr(descriptor_pb2.FieldDescriptorProto, kind))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.test.SSLConfig"))


def test_tf_serving_gets_the_pems_inline_and_client_verification_on(tmp_path):
    from google.protobuf import text_format

    paths = pki.create_mtls(tmp_path / "mtls", ["dfp-detector"])
    pki.write_tf_serving_ssl_config(tmp_path / "mtls", tmp_path / "ssl.config")
    config = text_format.Parse((tmp_path / "ssl.config").read_text(), ssl_config_type()())
    assert config.client_verify
    assert config.server_key == paths["key"].read_text()
    assert config.server_cert == paths["certificate"].read_text()
    assert config.custom_ca == paths["ca"].read_text()
