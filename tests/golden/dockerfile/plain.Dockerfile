FROM quay.io/sclorg/python-312-c9s:c9s
LABEL "io.k8s.display-name"="registry.example.com/acme/app:latest" \
      "io.openshift.s2i.build.commit.id"="3f786850e387550fdab836ed7e6dc881de23001b" \
      "io.openshift.s2i.build.image"="quay.io/sclorg/python-312-c9s:c9s" \
      "io.openshift.s2i.build.source-location"="https://example.com/acme/app.git"
COPY --chown=1001:0 upload/src /tmp/src
USER 1001
RUN ["/usr/libexec/s2i/assemble"]
CMD ["/usr/libexec/s2i/run"]
