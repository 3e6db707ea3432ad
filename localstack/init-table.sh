#!/usr/bin/env bash
# Creates the Eshtarek table in LocalStack (or any DynamoDB endpoint) with the same keys, index
# and TTL as template.yaml. Mount it as a LocalStack init hook
# (/etc/localstack/init/ready.d/) or run it by hand with ENDPOINT set.
set -euo pipefail
ENDPOINT=${ENDPOINT:-http://localhost:4566}
TABLE=${ESHTAREK_TABLE:-eshtarek}
export AWS_REGION=${AWS_REGION:-us-east-1}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
if aws --endpoint-url "$ENDPOINT" dynamodb describe-table --table-name "$TABLE" > /dev/null 2>&1; then
    echo "table $TABLE exists"
    exit 0
fi
aws --endpoint-url "$ENDPOINT" dynamodb create-table \
    --table-name "$TABLE" \
    --billing-mode PAY_PER_REQUEST \
    --attribute-definitions AttributeName=PK,AttributeType=S AttributeName=SK,AttributeType=S \
        AttributeName=GSI1PK,AttributeType=S AttributeName=GSI1SK,AttributeType=S \
    --key-schema AttributeName=PK,KeyType=HASH AttributeName=SK,KeyType=RANGE \
    --global-secondary-indexes \
        'IndexName=GSI1,KeySchema=[{AttributeName=GSI1PK,KeyType=HASH},{AttributeName=GSI1SK,KeyType=RANGE}],Projection={ProjectionType=ALL}' \
    > /dev/null
aws --endpoint-url "$ENDPOINT" dynamodb update-time-to-live --table-name "$TABLE" \
    --time-to-live-specification Enabled=true,AttributeName=expires_at > /dev/null
echo "created table $TABLE"
