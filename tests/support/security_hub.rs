//! What Security Hub holds, read back from moto (the auditor never reads
//! findings; only tests do).

use aws_config::SdkConfig;
use aws_sdk_securityhub::types::AwsSecurityFinding;

/// Every finding Security Hub holds in `region` (GetFindings, all pages).
///
/// On a thread of its own with a 64 MiB stack: the SDK's debug-build
/// deserialiser of a finding's Resource (its ResourceDetails hold every
/// resource type's details inline: 31 KB by size_of) overflows a 2 MiB
/// test thread (seen in gdb: `de_resource`). The auditor never reads
/// findings back; only tests do.
pub async fn findings(sdk: &SdkConfig, region: &str) -> Vec<AwsSecurityFinding> {
    let conf = aws_sdk_securityhub::config::Builder::from(sdk)
        .region(aws_config::Region::new(region.to_string()))
        .build();
    let read = move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let client = aws_sdk_securityhub::Client::from_conf(conf);
            let mut out = Vec::new();
            let mut token = None;
            loop {
                let page = client
                    .get_findings()
                    .set_next_token(token)
                    .send()
                    .await
                    .expect("GetFindings");
                out.extend(page.findings().iter().cloned());
                match page.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_string()),
                    _ => return out,
                }
            }
        })
    };
    tokio::task::spawn_blocking(move || {
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(read)
            .unwrap()
            .join()
            .unwrap()
    })
    .await
    .unwrap()
}
