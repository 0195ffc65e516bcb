FROM daeploy/s2i-python:latest
LABEL "io.k8s.display-name"="registry.example.com/acme/app:latest" \
      "io.openshift.s2i.build.commit.id"="3f786850e387550fdab836ed7e6dc881de23001b" \
      "io.openshift.s2i.build.image"="daeploy/s2i-python:latest" \
      "io.openshift.s2i.build.source-location"="https://example.com/acme/app.git"
ENV APP_FILE="service.py"
COPY --chown=0:0 upload/src /tmp/src
RUN ["/.s2i/bin/assemble"]
CMD ["/.s2i/bin/run"]
