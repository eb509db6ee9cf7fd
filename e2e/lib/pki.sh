# shellcheck shell=bash
# CA, certificates and kubeconfigs for the local cluster, made with openssl. Idempotent: files
# that exist are kept (delete $PKI to regenerate).

_cert() { # _cert NAME CN O SANS(comma list or "") USAGE(client|server|both)
    local name=$1 cn=$2 o=$3 sans=$4 usage=$5 ext
    [ -f "$PKI/$name.crt" ] && return 0
    case $usage in
        client) ext="extendedKeyUsage=clientAuth" ;;
        server) ext="extendedKeyUsage=serverAuth" ;;
        both) ext="extendedKeyUsage=serverAuth,clientAuth" ;;
    esac
    local subj="/CN=$cn"; [ -n "$o" ] && subj="/O=$o/CN=$cn"
    {
        printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n%s\n' "$ext"
        [ -n "$sans" ] && printf 'subjectAltName=%s\n' "$sans"
    } >"$PKI/$name.ext"
    openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
    openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
    openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
        -days 3650 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
    rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

_kubeconfig() { # _kubeconfig FILE CERTNAME SERVER
    local file=$1 cert=$2 server=$3
    [ -f "$file" ] && grep -q "server: $server\$" "$file" && return 0
    cat >"$file" <<KC
apiVersion: v1
kind: Config
clusters:
- name: neptune-e2e
  cluster:
    certificate-authority: $PKI/ca.crt
    server: $server
users:
- name: $cert
  user:
    client-certificate: $PKI/$cert.crt
    client-key: $PKI/$cert.key
contexts:
- name: neptune-e2e
  context: {cluster: neptune-e2e, user: $cert}
current-context: neptune-e2e
KC
}

make_pki() { # make_pki HOST_IP
    local hip=$1
    mkdir -p "$PKI"
    chmod 700 "$PKI"
    if [ ! -f "$PKI/ca.crt" ]; then
        openssl genrsa -out "$PKI/ca.key" 2048 2>/dev/null
        openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=neptune-e2e-ca" -days 3650 \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
            -out "$PKI/ca.crt" 2>/dev/null
    fi
    if [ ! -f "$PKI/sa.key" ]; then
        openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
        openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
    fi
    local d="kubernetes.default.svc.$CLUSTER_DOMAIN"
    # The serving cert names the host IP: regenerate it if the host IP changed.
    if [ -f "$PKI/apiserver.crt" ] && ! openssl x509 -in "$PKI/apiserver.crt" -noout -text | grep -q "IP Address:$hip\b"; then
        rm -f "$PKI/apiserver.crt"
    fi
    _cert apiserver kube-apiserver "" \
        "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:$d,IP:127.0.0.1,IP:$SERVICE_IP,IP:$hip" server
    _cert admin admin system:masters "" client
    _cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters "" client
    _cert controller-manager system:kube-controller-manager "" "" client
    _cert scheduler system:kube-scheduler "" "" client
    _cert kube-proxy system:kube-proxy "" "" client
    _cert kubelet "system:node:$NODE_NAME" system:nodes "DNS:$NODE_NAME,DNS:localhost,IP:127.0.0.1,IP:$hip" both
    _cert prometheus prometheus system:masters "" client
    local server="https://127.0.0.1:$APISERVER_PORT"
    _kubeconfig "$KUBECONFIG_ADMIN" admin "$server"
    _kubeconfig "$PKI/controller-manager.kubeconfig" controller-manager "$server"
    _kubeconfig "$PKI/scheduler.kubeconfig" scheduler "$server"
    _kubeconfig "$PKI/kube-proxy.kubeconfig" kube-proxy "$server"
    _kubeconfig "$PKI/kubelet.kubeconfig" kubelet "$server"
}
